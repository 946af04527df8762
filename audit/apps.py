from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

        from . import logins

        user_logged_in.connect(logins.on_logged_in, dispatch_uid="audit.login")
        user_logged_out.connect(logins.on_logged_out, dispatch_uid="audit.logout")
        user_login_failed.connect(logins.on_login_failed, dispatch_uid="audit.login_failed")
