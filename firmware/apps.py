from django.apps import AppConfig


class FirmwareConfig(AppConfig):
    name = "firmware"

    def ready(self):
        from cluster.rollout.rules import sending_stalled
        from firmware.tasks import distribute

        # The cluster's health round notices a send that stalled; sending is this app's.
        sending_stalled.connect(lambda sender, rollout, **kw: distribute.delay(rollout.pk), weak=False)
