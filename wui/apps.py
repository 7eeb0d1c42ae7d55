from django.apps import AppConfig


class WuiConfig(AppConfig):
    name = "wui"
