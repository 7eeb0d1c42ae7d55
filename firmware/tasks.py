"""Celery tasks of a software update: thin wrappers; the Rollout rows hold the outcome."""

from celery import shared_task

from firmware import rollout


@shared_task
def distribute(rollout_id):
    rollout.distribute(rollout_id)


@shared_task
def reboot_node(node_id):
    rollout.send_reboot(node_id)
