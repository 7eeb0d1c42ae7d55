import os

from celery import Celery

import wui.broker  # noqa: F401  (registers the embedded file broker)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wui.settings")

app = Celery("wui")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
