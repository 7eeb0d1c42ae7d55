from django.apps import AppConfig


class WuiConfig(AppConfig):
    name = "wui"

    def ready(self):
        # Every Django process (web, worker, manage.py) enqueues its shared_tasks on this app.
        import wui.celery  # noqa: F401
