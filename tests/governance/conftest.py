from tests.distribution.conftest import clock, receiver_factory, webhook_settings  # noqa: F401
