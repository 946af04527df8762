from django.apps import AppConfig
from django.conf import settings


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "operations"

    def ready(self) -> None:
        from celery.signals import setup_logging

        from . import workers  # connects the Celery signal receivers

        if settings.LOG_FORMAT == "json":
            setup_logging.connect(workers.keep_django_logging, weak=False)
