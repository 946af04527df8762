from django.apps import AppConfig


class HashesConfig(AppConfig):
    name = "hashes"
    verbose_name = "Hashes and distribution"
