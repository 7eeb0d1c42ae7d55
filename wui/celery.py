import os

from celery import Celery, signals

import wui.broker  # noqa: F401  (registers the embedded file broker)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wui.settings")

app = Celery("wui")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
def _fresh_content_types(**kwargs):
    # Content type ids can change under a long-running worker (a migrate, a flushed
    # test database); a stale cached id makes every audited write fail.
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
