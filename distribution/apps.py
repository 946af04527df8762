from django.apps import AppConfig


class DistributionConfig(AppConfig):
    name = "distribution"
    verbose_name = "Distribution (webhook subscriptions)"

    def ready(self) -> None:
        from celery.signals import task_postrun

        from .triggers import after_task

        task_postrun.connect(after_task, weak=False, dispatch_uid="distribution.after_pipeline_task")
