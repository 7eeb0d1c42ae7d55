# The Celery app is created when Django starts (WuiConfig.ready), not on importing this package: the
# command-line client (wui.cli) runs on operators' machines with the standard library and click only.
