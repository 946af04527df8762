from django.apps import AppConfig


class ConsortiumConfig(AppConfig):
    name = "consortium"
    verbose_name = "consortium"

    def ready(self) -> None:
        from . import checks  # noqa: F401  registers the system checks
