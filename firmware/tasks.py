"""Celery tasks of a software update: thin wrappers; the Rollout rows hold the outcome."""

from celery import shared_task

from firmware import install


# The biggest patch to the largest cluster takes minutes: the limit only ends a send that hangs. It is
# acknowledged when it starts, not when done: after a worker's death the Rollout rows resume it
# (cluster.rollout.rules.STALLED_AFTER), and a message handed out again could run a second send beside a live one.
@shared_task(time_limit=30 * 60, acks_late=False)
def distribute(rollout_id):
    install.distribute(rollout_id)
