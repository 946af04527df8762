from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consortium.settings")

application = get_wsgi_application()

from consortium.checks import refuse_to_start_if_misconfigured  # noqa: E402  needs the apps loaded

refuse_to_start_if_misconfigured()
