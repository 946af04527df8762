from django.apps import AppConfig


class DistributionConfig(AppConfig):
    name = "distribution"
    verbose_name = "Distribution (webhook subscriptions)"

    def ready(self) -> None:
        from hashes.services.feed import events_published
        from members.services import token_revoked

        from .services.subscriptions import token_revoked_received
        from .tasks import events_published_received

        events_published.connect(events_published_received, weak=False, dispatch_uid="distribution.events_published")
        token_revoked.connect(token_revoked_received, weak=False, dispatch_uid="distribution.token_revoked")
