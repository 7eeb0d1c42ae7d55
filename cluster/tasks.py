"""Celery tasks: thin wrappers that take ids and record outcomes on rows."""

from celery import shared_task

from cluster import services


@shared_task
def refresh_facts(node_id):
    services.refresh_facts(node_id)
