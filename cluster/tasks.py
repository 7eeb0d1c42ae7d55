"""Celery tasks: thin wrappers that take ids; the rows record the outcome."""

from celery import shared_task

from cluster.configuration import push
from cluster.membership import health
from cluster.membership import rules as membership
from cluster.rollout import rules as rollout


@shared_task(expires=2)
def check_health():
    health.check_all()


@shared_task
def add_node(join_id):
    membership.carry_out_join(join_id)


@shared_task
def remove_node(node_id):
    membership.carry_out_delete(node_id)


@shared_task
def sync_node(node_id):
    membership.sync_node(node_id)


@shared_task
def push_config(node_ids=None):
    push.push_soon(node_ids)


@shared_task
def resync_node(node_id):
    push.push_soon([node_id])


@shared_task
def scheduled_backup():
    from cluster.backup import rules as backup

    backup.save_scheduled()


@shared_task
def reboot_node(node_id):
    rollout.send_reboot(node_id)
