"""One env-driven settings module. Defaults are the embedded mode (SQLite and a filesystem Celery
broker under var/); production switches on by setting DATABASE_URL and CELERY_BROKER_URL.
Every setting is documented in README.md ("Configuration")."""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from ops.access import parse_networks, token_digest
from ops.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


RATE_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
                "d": 86400, "day": 86400}


def env_rate(name: str, default: str) -> tuple[int, int] | None:
    """A rate `<count>/<period>` (period: second, minute, hour or day, or s, min, h, d) as (count,
    seconds); `off` for none."""
    value = env(name, default).strip().lower()
    if value == "off":
        return None
    count, _, period = value.partition("/")
    if not count.strip().isdigit() or period.strip() not in RATE_PERIODS:
        raise ImproperlyConfigured(f"{name} must look like 120/min (second, minute, hour, day) or be off, not {value!r}.")
    return int(count), RATE_PERIODS[period.strip()]


VAR_DIR = Path(env("CONSORTIUM_VAR_DIR", str(BASE_DIR / "var")))
# Owner only: it holds the SQLite database, the embedded broker's messages and generated secrets.
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
# numba caches the match index's compiled loops beside their source (cache=True ignores
# PYTHONDONTWRITEBYTECODE); keep them under var/ so that a read-only checkout works.
os.environ.setdefault("NUMBA_CACHE_DIR", str(VAR_DIR / "numba-cache"))


def secret_from_file_or_created(path: Path) -> str:
    """Embedded mode keeps its generated secrets under var/, readable by the owner only."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


EMBEDDED = not env("DATABASE_URL")

if env("DJANGO_SECRET_KEY"):
    SECRET_KEY = env("DJANGO_SECRET_KEY")
elif env("DJANGO_SECRET_KEY_FILE"):
    SECRET_KEY = Path(env("DJANGO_SECRET_KEY_FILE")).read_text().strip()
elif EMBEDDED:
    SECRET_KEY = secret_from_file_or_created(VAR_DIR / "django-secret-key")
else:
    # Every host must share one secret (sessions, CSRF, the key that seals webhook secrets by
    # default); one generated on this host would silently differ from the others'.
    raise ImproperlyConfigured(
        "Production mode (DATABASE_URL is set) needs DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE; "
        "give every host the same one."
    )

DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
# Production runs behind a TLS proxy (gunicorn listens on 127.0.0.1 and trusts X-Forwarded-* only
# from there): plain http is redirected to https, and browsers are told to use https only.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_TLS_PROXY", not EMBEDDED) else None
)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", not EMBEDDED)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if EMBEDDED else 365 * 86400)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", not EMBEDDED)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", not EMBEDDED)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not EMBEDDED)
# Admin sign-in: this many failures for one username, or from one address, within the lockout
# period lock further attempts out for that long (audit.logins).
ADMIN_LOGIN_MAX_FAILURES = env_int("ADMIN_LOGIN_MAX_FAILURES", 5)
ADMIN_LOGIN_LOCKOUT_SECONDS = env_int("ADMIN_LOGIN_LOCKOUT_SECONDS", 15 * 60)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "consortium",
    "audit",
    "members",
    "hashes",
    "distribution",
    "suppression",
    "transparency",
    "taxii",
    "ops",
    "media",
]

MIDDLEWARE = [
    "ops.middleware.RequestIdMiddleware",
    "ops.middleware.OpsEndpointsMiddleware",  # /healthz, /readyz, /metrics (ops/views.py)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database that cannot be reached answers 503 database_unavailable with Retry-After, not 500.
    "consortium.api.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "consortium.urls"
WSGI_APPLICATION = "consortium.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

SQLITE_PATH = VAR_DIR / "consortium.sqlite3"
if EMBEDDED:
    # SQLite would create it world-readable under the usual umask; its -wal and -shm files take
    # the database file's permissions.
    try:
        os.close(os.open(SQLITE_PATH, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{SQLITE_PATH}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with a health check that needs no round trip (consortium/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "consortium.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One writer at a time: IMMEDIATE makes writers queue on the lock instead of failing with
    # "database is locked" when a read transaction later wants to write; WAL lets readers go on.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that the processes an end-to-end test starts share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

# The reads on every request's hot path (token, match) are prepared once per PostgreSQL connection
# (consortium/db.read_prepared); off behind a pooler in transaction mode, such as PgBouncer.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True  # serves admin and API-docs assets without a collectstatic step

# text (the default) or json: one JSON object a line, with the request id and the task (ops/logs.py).
LOG_FORMAT = env("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}.")
LOGGING = logging_config(log_format=LOG_FORMAT, level=env("LOG_LEVEL", "INFO"))

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["members.authentication.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["members.permissions.IsActiveMember"],
    "DEFAULT_PARSER_CLASSES": ["consortium.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "consortium.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "members.schema.ScopedAutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["members.throttling.TokenRateThrottle"],
    "UNAUTHENTICATED_USER": None,
}
# Requests per API token, by kind (members/throttling.py): a view's scope, or its
# `throttle_scope`. `media` is hashing an uploaded file (POST hash/, a file sent to match/).
THROTTLE_RATES = {
    "submit": env_rate("THROTTLE_SUBMIT", "120/min"),
    "read": env_rate("THROTTLE_READ", "1200/min"),
    "match": env_rate("THROTTLE_MATCH", "600/min"),
    "media": env_rate("THROTTLE_MEDIA", "30/min"),
    "subscribe": env_rate("THROTTLE_SUBSCRIBE", "120/min"),
    # GET stats/: each range not counted within the last minute is counted afresh by the database.
    "stats": env_rate("THROTTLE_STATS", "10/min"),
}

# The OpenAPI schema and the browsable docs: public in embedded mode; in production only for API
# tokens and logged-in staff, unless made public here.
API_DOCS_PUBLIC = env_bool("API_DOCS_PUBLIC", EMBEDDED)

SPECTACULAR_SETTINGS = {
    "TITLE": "consortium API",
    "DESCRIPTION": "Share signed PDQ, vPDQ, MD5 and SHA-256 hash statements between member organisations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/schema/ and /api/docs/: public while API_DOCS_PUBLIC, else for API tokens and staff sessions.
    "SERVE_AUTHENTICATION": ["members.authentication.ApiTokenAuthentication",
                             "rest_framework.authentication.SessionAuthentication"],
    "SERVE_PERMISSIONS": ["members.permissions.ApiDocsAccess"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # OpenAPI 3.1, so that the webhook bodies are described (`webhooks`) beside the operations.
    "OAS_VERSION": "3.1.0",
    # Requests get components of their own: an upload is `format: binary`, not a URL.
    "COMPONENT_SPLIT_REQUEST": True,
    # Choices here are their own labels: a description repeating them would only tell equal sets apart.
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "ENUM_NAME_OVERRIDES": {
        # The stable error codes of each status (consortium/api/openapi.py).
        **{f"{name}Code": f"consortium.api.openapi.{constant}_CODES" for name, constant in (
            ("BadRequest", "BAD_REQUEST"), ("Unauthorized", "UNAUTHORIZED"), ("Forbidden", "FORBIDDEN"),
            ("NotFound", "NOT_FOUND"), ("Conflict", "CONFLICT"), ("TooLarge", "TOO_LARGE"),
            ("TooManyRequests", "TOO_MANY_REQUESTS"), ("ServiceUnavailable", "SERVICE_UNAVAILABLE"))},
        "SignalTypeEnum": "hashes.schemas.SIGNAL_TYPES",
        "StatementKindEnum": "hashes.schemas.STATEMENT_KINDS",
        "StatementStateEnum": "hashes.schemas.STATEMENT_STATES",
        "HashStateEnum": "hashes.schemas.HASH_STATES",
        "DisputeStateEnum": "hashes.schemas.DISPUTE_STATES",
        "EventTypeEnum": "hashes.schemas.EVENT_TYPES",
        "MemberKindEnum": "members.schema.MEMBER_KINDS",
        "MemberStatusEnum": "members.schema.MEMBER_STATUSES",
        "KeyStateEnum": "members.schema.KEY_STATES",
        "TokenScopeEnum": "members.schema.TOKEN_SCOPES",
        "SubscriptionStateEnum": "distribution.schemas.SUBSCRIPTION_STATES",
        "SubscriptionStateReasonEnum": "distribution.schemas.SUBSCRIPTION_STATE_REASONS",
        "DeliveryLaneEnum": "distribution.schemas.DELIVERY_LANES",
        "DeliveryStateEnum": "distribution.schemas.DELIVERY_STATES",
        "WebhookLaneEnum": "distribution.schemas.WEBHOOK_LANES",
    },
    "WEBHOOKS": ["distribution.schemas.hash_events", "distribution.schemas.ping"],
    "TAGS": [
        {"name": "members", "description": "The calling member."},
        {"name": "keys", "description": "Signing keys: members' (JWK Set) and the server's."},
        {"name": "statements", "description": "Signed statements: submit, and follow your own."},
        {"name": "feed", "description": "The ordered log of hash events."},
        {"name": "hashes", "description": "Hashes as your visible statements describe them."},
        {"name": "matching", "description": "Match signals or media; hash media."},
        {"name": "disputes", "description": "Disputes on hashes you can see."},
        {"name": "subscriptions", "description": "Webhook subscriptions and their deliveries."},
        {"name": "transparency", "description": "Transparency statistics."},
    ],
}

# Request and statement limits.
SUBMIT_MAX_STATEMENTS = env_int("SUBMIT_MAX_STATEMENTS", 1000)
# New statements a member may submit in any 24 hours (0: no quota); a request past it is refused whole.
MEMBER_DAILY_STATEMENT_QUOTA = env_int("MEMBER_DAILY_STATEMENT_QUOTA", 100_000)
# Signing keys one member may have waiting for an administrator's approval (409 beyond): POST keys/
# cannot fill the approval queue.
SIGNING_KEY_MAX_PENDING = env_int("SIGNING_KEY_MAX_PENDING", 5)
if SIGNING_KEY_MAX_PENDING < 1:
    raise ImproperlyConfigured("SIGNING_KEY_MAX_PENDING must be at least 1.")
# Bytes of new statements (their JWS as sent) a member may submit in any 24 hours (0: no quota): the
# statement quota alone lets a member send 100,000 statements of STATEMENT_MAX_BYTES, 51 GB, a day.
MEMBER_DAILY_BYTE_QUOTA = env_int("MEMBER_DAILY_BYTE_QUOTA", 1024 * 1024 * 1024)
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", 32 * 1024 * 1024)
# DRF reads a JSON body through request.body, which Django caps at this (refusing an over-long
# Content-Length before reading): the documented limit, not Django's 2.5 MB. It also caps a form's
# fields; uploaded files do not count against it (MEDIA_MAX_BYTES bounds those).
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
STATEMENT_MAX_BYTES = env_int("STATEMENT_MAX_BYTES", 512 * 1024)
STATEMENT_NOTE_MAX_CHARS = env_int("STATEMENT_NOTE_MAX_CHARS", 2000)
STATEMENT_MAX_SIGNALS = env_int("STATEMENT_MAX_SIGNALS", 32)
VPDQ_MAX_FRAMES = env_int("VPDQ_MAX_FRAMES", 20000)
IAT_MAX_FUTURE_SECONDS = env_int("IAT_MAX_FUTURE_SECONDS", 300)
PDQ_MIN_QUALITY = env_int("PDQ_MIN_QUALITY", 50)
FEED_DEFAULT_LIMIT = env_int("FEED_DEFAULT_LIMIT", 100)
FEED_MAX_LIMIT = env_int("FEED_MAX_LIMIT", 1000)
FEED_MAX_BYTES = env_int("FEED_MAX_BYTES", 8 * 1024 * 1024)
# TAXII 2.1 (taxii/): objects per page (at most TAXII_MAX_LIMIT; a page also stops past about
# TAXII_MAX_BYTES of JSON, holding at least one object), and the TLP 2.0 marking of every indicator.
TAXII_DEFAULT_LIMIT = env_int("TAXII_DEFAULT_LIMIT", 100)
TAXII_MAX_LIMIT = env_int("TAXII_MAX_LIMIT", 1000)
TAXII_MAX_BYTES = env_int("TAXII_MAX_BYTES", 8 * 1024 * 1024)
TAXII_TLP = env("TAXII_TLP", "amber").strip().lower()
if TAXII_TLP not in ("clear", "green", "amber", "amber+strict", "red"):
    raise ImproperlyConfigured(f"TAXII_TLP must be clear, green, amber, amber+strict or red, not {TAXII_TLP!r}.")
if not 1 <= TAXII_DEFAULT_LIMIT <= TAXII_MAX_LIMIT:
    raise ImproperlyConfigured("TAXII_DEFAULT_LIMIT must be from 1 to TAXII_MAX_LIMIT.")
# What one hash carries of its signed statements (feed, detail, match, webhooks): one per member, at
# most this many members and about this many bytes; the rest are paged at hashes/{id}/statements/.
HASH_MAX_STATEMENTS = env_int("HASH_MAX_STATEMENTS", 20)
HASH_MAX_STATEMENT_BYTES = env_int("HASH_MAX_STATEMENT_BYTES", 1024 * 1024)

# --- Matching and variant families ---------------------------------------------------------------
DEDUPE_DISTANCE = env_int("DEDUPE_DISTANCE", 8)  # a PDQ this close to a visible hash corroborates it
MATCH_DISTANCE = env_int("MATCH_DISTANCE", 31)  # ... this close, it joins that hash's variant family
MATCH_MAX_DISTANCE = env_int("MATCH_MAX_DISTANCE", 31)  # cap on a match query's own max_distance
MATCH_MAX_QUERIES = env_int("MATCH_MAX_QUERIES", 1000)
MATCH_MAX_RESULTS = env_int("MATCH_MAX_RESULTS", 1000)  # per query, nearest first
# Distinct usable frames one vPDQ match query may carry (each is searched, then compared per candidate).
MATCH_MAX_VPDQ_FRAMES = env_int("MATCH_MAX_VPDQ_FRAMES", 5000)
# Past this many bytes of matched hashes a match answer stops adding matches and says it was truncated.
MATCH_MAX_RESPONSE_BYTES = env_int("MATCH_MAX_RESPONSE_BYTES", 8 * 1024 * 1024)
VPDQ_FRAME_DISTANCE = env_int("VPDQ_FRAME_DISTANCE", 31)
VPDQ_FRAME_QUALITY = env_int("VPDQ_FRAME_QUALITY", 50)
VPDQ_CLUSTER_PERCENT = float(env("VPDQ_CLUSTER_PERCENT", "80"))  # either percentage: same family
VPDQ_DUPLICATE_PERCENT = float(env("VPDQ_DUPLICATE_PERCENT", "95"))  # both percentages: the same video
# Publishing compares a new video only with videos sharing this many frames (or all of its own, if
# fewer), at most VPDQ_MAX_CANDIDATES of them: bounded work under the feed lock.
VPDQ_MIN_SHARED_FRAMES = env_int("VPDQ_MIN_SHARED_FRAMES", 3)
VPDQ_MAX_CANDIDATES = env_int("VPDQ_MAX_CANDIDATES", 32)
INDEX_REFRESH_SECONDS = float(env("INDEX_REFRESH_SECONDS", "1.0"))
INDEX_WARM_ON_START = env_bool("INDEX_WARM_ON_START", True)  # build each process's index as it starts
# The bulk of the match index is one snapshot file a host's processes share (hashes/matching.py).
INDEX_SHARED = env_bool("INDEX_SHARED", True)
INDEX_SNAPSHOT_DIR = Path(env("INDEX_SNAPSHOT_DIR", str(VAR_DIR / "index")))
INDEX_DELTA_MAX_ROWS = env_int("INDEX_DELTA_MAX_ROWS", 8192)
MEDIA_MAX_BYTES = env_int("MEDIA_MAX_BYTES", 256 * 1024 * 1024)
# An upload stops being read the moment it passes MEDIA_MAX_BYTES (consortium/api/uploads.py).
FILE_UPLOAD_HANDLERS = [
    "consortium.api.uploads.BoundedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Decoded size bounds, checked on the header before decoding: an image's pixels, a video frame's.
MEDIA_MAX_PIXELS = env_int("MEDIA_MAX_PIXELS", 50_000_000)
MEDIA_MAX_FRAME_PIXELS = env_int("MEDIA_MAX_FRAME_PIXELS", 4096 * 4096)
# Video is hashed within the request: keep it short enough for the web timeout (GUNICORN_TIMEOUT).
MEDIA_MAX_VIDEO_SECONDS = env_int("MEDIA_MAX_VIDEO_SECONDS", 60)
MEDIA_VPDQ_SECONDS_PER_HASH = float(env("MEDIA_VPDQ_SECONDS_PER_HASH", "0"))  # 0: every frame, as vpdq does
FILE_UPLOAD_TEMP_DIR = None  # uploads past 2.5 MB go to the system's temporary folder and are deleted after the request

# --- Media hashing jobs (media/): long videos, hashed on the `media` queue, not within a request ----
# An upload is written straight to MEDIA_JOB_DIR (on the disk of CONSORTIUM_VAR_DIR, which the web
# processes and the media workers must share) and deleted once hashed or failed.
MEDIA_JOB_DIR = VAR_DIR / "media-jobs"
MEDIA_JOB_MAX_VIDEO_SECONDS = env_int("MEDIA_JOB_MAX_VIDEO_SECONDS", 14400)
MEDIA_JOB_RETENTION_HOURS = env_int("MEDIA_JOB_RETENTION_HOURS", 24)  # a finished job's answer, then it is deleted
# A done job's answer gives a video's frames a page at a time (`frames_after`, `frames_limit`): about
# 100 bytes a frame, so a 4-hour video's 400,000 frames never go out in one answer. The default holds
# every frame of any video POST hash/ takes (MEDIA_MAX_VIDEO_SECONDS) in one page, as before.
MEDIA_JOB_PAGE_FRAMES = env_int("MEDIA_JOB_PAGE_FRAMES", 10_000)
if MEDIA_JOB_PAGE_FRAMES < 1:
    raise ImproperlyConfigured("MEDIA_JOB_PAGE_FRAMES must be at least 1.")
MEDIA_JOB_MAX_PER_MEMBER = env_int("MEDIA_JOB_MAX_PER_MEMBER", 4)  # queued and running at once (429 beyond)
# Running at once per member: below the media worker's concurrency (2 in deploy/Procfile), so one
# member's four-hour videos never hold every worker while another member's job waits.
MEDIA_JOB_MAX_RUNNING_PER_MEMBER = env_int("MEDIA_JOB_MAX_RUNNING_PER_MEMBER", 1)
# A running job writes its progress and a heartbeat this often; one silent for MEDIA_JOB_LEASE_SECONDS
# lost its worker, and the sweep runs it again (MEDIA_JOB_MAX_ATTEMPTS in all) or fails it.
MEDIA_JOB_HEARTBEAT_SECONDS = float(env("MEDIA_JOB_HEARTBEAT_SECONDS", "5"))
MEDIA_JOB_LEASE_SECONDS = env_int("MEDIA_JOB_LEASE_SECONDS", 60)
MEDIA_JOB_MAX_ATTEMPTS = env_int("MEDIA_JOB_MAX_ATTEMPTS", 2)
# A queued job whose message was lost (a broker restart) is queued again after this long.
MEDIA_JOB_REQUEUE_SECONDS = env_int("MEDIA_JOB_REQUEUE_SECONDS", 900)
MEDIA_JOB_TIME_LIMIT_SECONDS = env_int("MEDIA_JOB_TIME_LIMIT_SECONDS", 4 * 3600)  # one attempt, then `media_job_timeout`
MEDIA_JOB_SWEEP_SECONDS = env_int("MEDIA_JOB_SWEEP_SECONDS", 15)
if not 0 < MEDIA_JOB_HEARTBEAT_SECONDS < MEDIA_JOB_LEASE_SECONDS:
    raise ImproperlyConfigured("MEDIA_JOB_HEARTBEAT_SECONDS must be positive and below MEDIA_JOB_LEASE_SECONDS.")
if MEDIA_JOB_MAX_ATTEMPTS < 1 or MEDIA_JOB_MAX_PER_MEMBER < 1 or MEDIA_JOB_MAX_RUNNING_PER_MEMBER < 1:
    raise ImproperlyConfigured("MEDIA_JOB_MAX_ATTEMPTS, MEDIA_JOB_MAX_PER_MEMBER and MEDIA_JOB_MAX_RUNNING_PER_MEMBER "
                               "must be at least 1.")

# --- Pipeline -------------------------------------------------------------------------------------
VERIFY_CHUNK_SIZE = env_int("VERIFY_CHUNK_SIZE", 250)
PUBLISH_BATCH_SIZE = env_int("PUBLISH_BATCH_SIZE", 500)
PUBLISH_BATCH_MAX_FRAMES = env_int("PUBLISH_BATCH_MAX_FRAMES", 100_000)  # vPDQ frames per publishing transaction
# How long a verification task waits for the feed lock to publish what it verified in its own
# transaction (hashes.services.publishing.publish_just_verified); past it, the statements are stored
# verified for a later publisher (the next task, or the sweep). 0, the default: never wait. Waiting
# writes each statement row once less, but a verification process idles while it waits, and on 2
# cores that cost more than it saved (bench/README.md, Ingest). Checked below, once
# CELERY_TASK_SOFT_TIME_LIMIT is known: the wait must end well inside the task's own bound.
PUBLISH_LOCK_WAIT_SECONDS_RAW = env("PUBLISH_LOCK_WAIT_SECONDS", "0")
SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_SECONDS", 10)
SWEEP_STALE_AFTER_SECONDS = env_int("SWEEP_STALE_AFTER_SECONDS", 30)
# New statements whose (unverified) envelope names an active incident are verified on the priority
# queue, at most this many a minute per member; the rest queue as usual. They are published first
# only once verification has checked the signature and the incident.
INCIDENT_FAST_LANE_PER_MINUTE = env_int("INCIDENT_FAST_LANE_PER_MINUTE", 1000)

# --- Feedback and disputes ------------------------------------------------------------------------
FEEDBACK_REASONS = ("not_tvec", "wrong_label", "newsworthy", "counter_speech", "benign_common_image", "low_quality",
                    "other")

# --- Suppression list (known-benign entries; suppression/) -------------------------------------------
# A new PDQ within this many bits of an active entry is rejected (`benign_match`), never matched, and
# an entry disputes the live hashes this close to it. 8, like DEDUPE_DISTANCE: the distance at which two
# PDQs are taken for the same picture (re-encoded, resized, recompressed), so an entry catches copies of
# a blank frame or a logo, not real content that merely resembles it (a variant, up to 31 bits away).
# At most 31, the radius the match index searches exactly.
BENIGN_DISTANCE = env_int("BENIGN_DISTANCE", 8)
if not 0 <= BENIGN_DISTANCE <= 31:
    raise ImproperlyConfigured(f"BENIGN_DISTANCE must be from 0 to 31 bits, not {BENIGN_DISTANCE}.")
# A bulk import (`manage.py benign import`, the admin's import page) is refused whole past these.
BENIGN_IMPORT_MAX_BYTES = env_int("BENIGN_IMPORT_MAX_BYTES", 5 * 1024 * 1024)
BENIGN_IMPORT_MAX_ROWS = env_int("BENIGN_IMPORT_MAX_ROWS", 10_000)

# --- Transparency statistics (transparency/) -------------------------------------------------------
# A public page /transparency/ and /transparency.json with the figures members read at
# /api/v1/stats/, over the last TRANSPARENCY_PUBLIC_MONTHS months; per-member figures only if asked.
TRANSPARENCY_PUBLIC = env_bool("TRANSPARENCY_PUBLIC", False)
TRANSPARENCY_PER_MEMBER = env_bool("TRANSPARENCY_PER_MEMBER", False)
TRANSPARENCY_PUBLIC_MONTHS = env_int("TRANSPARENCY_PUBLIC_MONTHS", 24)
if not 1 <= TRANSPARENCY_PUBLIC_MONTHS <= 120:
    raise ImproperlyConfigured("TRANSPARENCY_PUBLIC_MONTHS must be from 1 to 120.")

# --- Server identity and outbound -----------------------------------------------------------------
CONSORTIUM_SIGNING_KEY_FILE = Path(env("CONSORTIUM_SIGNING_KEY_FILE", str(VAR_DIR / "server-signing-key.pem")))
# Embedded mode creates its server key on first start; production must provide one.
CONSORTIUM_SIGNING_KEY_CREATE = env_bool("CONSORTIUM_SIGNING_KEY_CREATE", EMBEDDED)
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", EMBEDDED)
# The `iss` of the statements the server signs itself (a dispute's removal); a member may not take it.
SERVER_ISSUER = env("SERVER_ISSUER", "consortium-server")

# --- Distribution (webhooks) ---------------------------------------------------------------------
# Outbound requests: https is required in production; internal addresses are governed by
# WEBHOOK_ALLOW_PRIVATE_TARGETS above. Both are checked when a URL is set and again at every send.
WEBHOOK_REQUIRE_HTTPS = env_bool("WEBHOOK_REQUIRE_HTTPS", not EMBEDDED)
WEBHOOK_CONNECT_TIMEOUT_SECONDS = float(env("WEBHOOK_CONNECT_TIMEOUT_SECONDS", "5"))
WEBHOOK_TIMEOUT_SECONDS = float(env("WEBHOOK_TIMEOUT_SECONDS", "15"))
# How long a worker holds a delivery it took; after that a killed worker's delivery is due again.
WEBHOOK_CLAIM_SECONDS = float(env("WEBHOOK_CLAIM_SECONDS", str(WEBHOOK_TIMEOUT_SECONDS + 15)))
WEBHOOK_MAX_RESPONSE_BYTES = env_int("WEBHOOK_MAX_RESPONSE_BYTES", 16 * 1024)
# A batch holds the events of at most WEBHOOK_BATCH_SIZE consecutive seqs, and stops growing once
# its body passes WEBHOOK_MAX_BATCH_BYTES (a batch always holds at least one event).
WEBHOOK_BATCH_SIZE = env_int("WEBHOOK_BATCH_SIZE", 500)
WEBHOOK_MAX_BATCH_BYTES = env_int("WEBHOOK_MAX_BATCH_BYTES", 1_000_000)
# Seconds to wait before each attempt of a batch: the Standard Webhooks schedule (immediately, 5 s,
# 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h); after the last one fails the subscription is disabled.
WEBHOOK_RETRY_SCHEDULE = [
    int(step) for step in env_list("WEBHOOK_RETRY_SCHEDULE", "0,5,300,1800,7200,18000,36000,50400,72000,86400")
]
WEBHOOK_RETRY_JITTER = float(env("WEBHOOK_RETRY_JITTER", "0.1"))
WEBHOOK_RETRY_AFTER_MAX_SECONDS = env_int("WEBHOOK_RETRY_AFTER_MAX_SECONDS", 86400)
WEBHOOK_SECRET_OVERLAP_SECONDS = env_int("WEBHOOK_SECRET_OVERLAP_SECONDS", 86400)
# Fernet keys that encrypt subscription secrets at rest, newest first (older ones still decrypt).
# Empty: one key derived from SECRET_KEY.
WEBHOOK_SECRET_KEYS = [
    key.strip()
    for key in (
        env("WEBHOOK_SECRET_KEYS")
        or (Path(env("WEBHOOK_SECRET_KEYS_FILE")).read_text() if env("WEBHOOK_SECRET_KEYS_FILE") else "")
    ).replace("\n", ",").split(",")
    if key.strip()
]
# Server key rotation: the previous key keeps signing (v1a) beside the current one until this time.
CONSORTIUM_SIGNING_KEY_PREVIOUS_FILE = env("CONSORTIUM_SIGNING_KEY_PREVIOUS_FILE")
CONSORTIUM_SIGNING_KEY_PREVIOUS_UNTIL = env("CONSORTIUM_SIGNING_KEY_PREVIOUS_UNTIL")
WEBHOOK_MAX_SUBSCRIPTIONS = env_int("WEBHOOK_MAX_SUBSCRIPTIONS", 10)
WEBHOOK_SWEEP_INTERVAL_SECONDS = float(env("WEBHOOK_SWEEP_INTERVAL_SECONDS", "2"))
WEBHOOK_WAKE_STALE_SECONDS = env_int("WEBHOOK_WAKE_STALE_SECONDS", 30)
WEBHOOK_PUMP_SECONDS = float(env("WEBHOOK_PUMP_SECONDS", "2"))
# Subscriptions one pump task serves side by side (their claims and acknowledgements are written
# together); more subscriptions make more pumps, run on the deliver worker's threads.
WEBHOOK_PUMP_GROUP_SIZE = env_int("WEBHOOK_PUMP_GROUP_SIZE", 50)
WEBHOOK_RETENTION_DAYS = env_int("WEBHOOK_RETENTION_DAYS", 14)

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport with atomic writes and claims (consortium/embedded_broker.py).
    BROKER_DIR = Path(env("CELERY_FILESYSTEM_BROKER_DIR", str(VAR_DIR / "broker")))
    BROKER_DIR.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT = "consortium.embedded_broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        "control_folder": str(BROKER_DIR / "control"),
        "polling_interval": 0.1,  # an idle worker looks at each of its queues' folders this often
    }
else:
    # A message a dead worker held comes back after this long; the sweep usually recovers it sooner.
    # "priority": workers take from their queues in the order listed (CELERY_TASK_QUEUES, or a
    # worker's --queues), so incident work goes first; kombu's default rotates between queues.
    # Socket timeouts: a Redis that takes connections but never answers (hung, failing over, a black
    # hole in the network) holds whatever publishes a task (a submission's request, a task queueing
    # the next) one timeout an attempt, four attempts (Celery's publish retries), not for ever; the
    # publish then fails and the sweeps queue the work from the database. A worker waiting for tasks
    # is not affected, idle for however long: kombu sends BRPOP with a 1 s server-side timeout and
    # waits for its reply in the event loop, reading only once the socket is readable.
    CELERY_BROKER_SOCKET_TIMEOUT_SECONDS = float(env("CELERY_BROKER_SOCKET_TIMEOUT_SECONDS", "5"))
    if not CELERY_BROKER_SOCKET_TIMEOUT_SECONDS > 0:  # 0 would fail every command at once
        raise ImproperlyConfigured("CELERY_BROKER_SOCKET_TIMEOUT_SECONDS must be a number of seconds above 0.")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 900),
        "queue_order_strategy": "priority",
        "socket_timeout": CELERY_BROKER_SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": CELERY_BROKER_SOCKET_TIMEOUT_SECONDS,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes a worker's database connections before and after every task unless
# told to reuse them; a new PostgreSQL connection per task (a backend forked, its caches cold) cost
# more than many tasks' own queries. They are reused as in the web processes instead: kept for
# DATABASE_CONN_MAX_AGE and dropped once broken (consortium/celery_app.py checks between tasks).
CELERY_DB_REUSE_MAX = 2**62
# Every task is stopped after this long: at the soft limit SoftTimeLimitExceeded is raised in it
# (its transaction rolls back), at the hard limit its process is killed. Either way nothing is
# lost: the database still says what is left to do and the sweeps queue it again. Sized well
# above a full run (a publish task of 50 batches of 500 takes about a minute on a loaded 2-core
# machine, a verification chunk of 250 well under a second), and below CELERY_VISIBILITY_TIMEOUT so
# that Redis never hands a running task to a second worker. Prefork workers only: the thread-pool
# webhook workers cannot stop a thread, and bound their own work (WEBHOOK_PUMP_SECONDS, timeouts).
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
if not 0 < CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_TASK_SOFT_TIME_LIMIT must be positive and below CELERY_TASK_TIME_LIMIT.")
if CELERY_TASK_TIME_LIMIT >= CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", float("inf")):
    raise ImproperlyConfigured("CELERY_TASK_TIME_LIMIT must be below CELERY_VISIBILITY_TIMEOUT.")
try:
    PUBLISH_LOCK_WAIT_SECONDS = float(PUBLISH_LOCK_WAIT_SECONDS_RAW)
except ValueError:
    PUBLISH_LOCK_WAIT_SECONDS = math.nan
if not 0 <= PUBLISH_LOCK_WAIT_SECONDS < CELERY_TASK_SOFT_TIME_LIMIT:  # also refuses nan and inf
    raise ImproperlyConfigured(f"PUBLISH_LOCK_WAIT_SECONDS must be a number of seconds from 0 to below "
                               f"CELERY_TASK_SOFT_TIME_LIMIT ({CELERY_TASK_SOFT_TIME_LIMIT}), "
                               f"not {PUBLISH_LOCK_WAIT_SECONDS_RAW!r}.")
del PUBLISH_LOCK_WAIT_SECONDS_RAW
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 0) or None  # None: one process per core
CELERY_TASK_DEFAULT_QUEUE = "default"
# Every queue, in the order a worker takes from them: a worker started with no --queues consumes
# them all, recovery and incident work first, then webhook batches, then media jobs (which take
# minutes each); deploy/Procfile splits them across processes instead.
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name)
    for name in ("sweep", "priority", "verify", "publish", "default", "deliver_priority", "deliver", "media")
]
# The one table of which task goes to which queue; callers never name a queue, except verification's
# fast lane (`priority`), chosen per statement.
CELERY_TASK_ROUTES = {
    "hashes.tasks.sweep_pipeline": {"queue": "sweep"},
    "hashes.tasks.verify_statements": {"queue": "verify"},
    "hashes.tasks.publish_verified": {"queue": "publish"},
    # Withdrawing a revoked key's statements works under the feed lock, as publishing does.
    "hashes.tasks.withdraw_revoked_key": {"queue": "publish"},
    "media.tasks.run_media_job": {"queue": "media"},
    "media.tasks.sweep_media_jobs": {"queue": "sweep"},
    "distribution.tasks.dispatch": {"queue": "deliver_priority"},
    "distribution.tasks.push": {"queue": "deliver_priority"},
    "distribution.tasks.sweep": {"queue": "deliver_priority"},
    "distribution.tasks.pump": {"queue": "deliver"},
}
# Expires: sweeps that queue up while workers are down or busy are dropped, not run back to back.
CELERY_BEAT_SCHEDULE = {
    "sweep-pipeline": {"task": "hashes.tasks.sweep_pipeline", "schedule": float(SWEEP_INTERVAL_SECONDS),
                       "options": {"expires": float(SWEEP_INTERVAL_SECONDS)}},
    "sweep-media-jobs": {"task": "media.tasks.sweep_media_jobs", "schedule": float(MEDIA_JOB_SWEEP_SECONDS),
                         "options": {"expires": float(MEDIA_JOB_SWEEP_SECONDS)}},
    "sweep-distribution": {"task": "distribution.tasks.sweep", "schedule": WEBHOOK_SWEEP_INTERVAL_SECONDS,
                           "options": {"expires": max(10.0, 5 * WEBHOOK_SWEEP_INTERVAL_SECONDS)}},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis, with a kombu defect worked around so that a Redis restart cannot stop a worker
    # (consortium/broker.py).
    CELERY_BROKER_TRANSPORT = "consortium.broker:Transport"

# --- Operations: /healthz, /readyz, /metrics (ops/) ---------------------------------------------------
# /readyz fails once the oldest statement not yet published or rejected has waited longer (0: not checked).
READY_MAX_PIPELINE_LAG_SECONDS = env_int("READY_MAX_PIPELINE_LAG_SECONDS", 300)
# Each readiness check, and the database reads of a scrape, give up after this long.
READY_CHECK_TIMEOUT_SECONDS = float(env("READY_CHECK_TIMEOUT_SECONDS", "2"))
# /metrics: a bearer token (only its digest is kept), and/or addresses allowed without one. Neither: closed.
_metrics_token = env("METRICS_TOKEN") or (
    Path(env("METRICS_TOKEN_FILE")).read_text().strip() if env("METRICS_TOKEN_FILE") else "")
if _metrics_token and len(_metrics_token) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 32`).")
METRICS_TOKEN_SHA256 = token_digest(_metrics_token) if _metrics_token else ""
del _metrics_token
try:
    METRICS_ALLOWED_IPS = parse_networks(env_list("METRICS_ALLOWED_IPS", ""))
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {exc}.") from None
# Several processes (gunicorn workers, a Celery worker's pool) counted as one: a directory per
# gunicorn master and per Celery worker, read by prometheus-client itself (README "Operations").
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR")
# host:port where a Celery worker serves its own metrics (empty: it does not).
_worker_metrics = env("WORKER_METRICS_ADDRESS").strip()
_worker_host, _, _worker_port = _worker_metrics.rpartition(":")
if _worker_metrics and not (_worker_host and _worker_port.isdigit()):
    raise ImproperlyConfigured(f"WORKER_METRICS_ADDRESS must be host:port, not {_worker_metrics!r}.")
WORKER_METRICS_ADDRESS = (_worker_host.strip("[]"), int(_worker_port)) if _worker_metrics else None

# --- Cache: request counts (throttles, the incident fast lane), shared by every process -------------
# Production: Redis (the broker's, unless CACHE_URL names another), where counting is atomic.
# Embedded: files under var/, shared by the processes of the one machine; neither a database
# table (it would put a write on every request behind SQLite's one writer, and need
# `createcachetable`) nor local memory (one count per process).
CACHE_URL = env("CACHE_URL", CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "")
# A Redis that takes connections but does not answer holds each request at most this long (per
# attempt; redis-py retries a few times), then the request is let through uncounted.
CACHE_SOCKET_TIMEOUT_SECONDS = float(env("CACHE_SOCKET_TIMEOUT_SECONDS", "1"))
if not CACHE_SOCKET_TIMEOUT_SECONDS > 0:  # 0 would fail every hit at once, and let every request through
    raise ImproperlyConfigured("CACHE_SOCKET_TIMEOUT_SECONDS must be a number of seconds above 0.")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                          "KEY_PREFIX": "consortium",
                          "OPTIONS": {"socket_timeout": CACHE_SOCKET_TIMEOUT_SECONDS,
                                      "socket_connect_timeout": CACHE_SOCKET_TIMEOUT_SECONDS}}}
elif CACHE_URL:
    raise ImproperlyConfigured("CACHE_URL must be a redis:// or rediss:// URL, or empty for files under var/.")
else:
    CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache"),
        # A count carries its window in its key and the client's next window deletes it, so there are
        # about two entries per token and kind of request: far below the entries that make Django cull.
        "TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": 20_000},
    }}

