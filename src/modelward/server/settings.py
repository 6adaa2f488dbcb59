"""Server settings from a YAML file and ``MODELWARD_*`` environment variables, validated at start.

Precedence, later wins: defaults < the settings file < the environment < command-line options.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from modelward.errors import UsageError

GIB = 1 << 30
ADMIN_TOKEN_PREFIX = "mw_"
"""Every API token starts with it (``server.auth.TOKEN_PREFIX``): only such tokens are looked up."""
ADMIN_TOKEN_MIN = 32
"""Characters an admin token needs after its prefix (``new_token()`` makes 43)."""
_ADMIN_TOKEN_BODY = re.compile(r"[A-Za-z0-9._~+/-]+=*")
"""What may follow the prefix: an HTTP bearer token's characters (RFC 6750 ``b64token``)."""
MAKE_TOKEN = "python -c 'import secrets; print(\"mw_\" + secrets.token_urlsafe(32))'"


class SettingsError(UsageError):
    """The server's settings are invalid; the message names each bad key."""


_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar(
    "modelward_settings_file", default=None
)
"""The settings file's values while :func:`load_settings` builds the settings."""


class _FileSource(PydanticBaseSettingsSource):
    """The YAML settings file's values, as a source placed below the environment."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_FILE_VALUES.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_VALUES.get() or {})


class ServerSettings(BaseSettings):
    """Every knob of ``modelward server``. Environment: ``MODELWARD_<NAME>`` (e.g. MODELWARD_DATA_DIR)."""

    model_config = SettingsConfigDict(env_prefix="MODELWARD_", extra="forbid")

    data_dir: Path = Field(
        Path("modelward-data"), description="Folder of the embedded database and blobs."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/hub.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    blob_backend: Literal["fs", "s3"] = "fs"
    blob_dir: Path | None = Field(
        None, description="Blob folder (fs backend); default <data_dir>/blobs."
    )
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    max_upload_bytes: int = Field(100 * GIB, gt=0, description="Largest blob an upload may have.")
    blob_fsync: Literal["upload", "revision"] = Field(
        "revision",
        description="When uploaded blobs are forced to disk (fs backend). 'revision': an upload is "
        "published atomically (a killed server leaves nothing half-visible) and acknowledged "
        "without waiting for the disk; the blobs a revision references are fsynced before the "
        "revision is recorded. A power loss can then damage only blobs no revision references; "
        "such a blob is never served (stored bytes are re-hashed after a restart) and is replaced "
        "by its next upload. 'upload': fsync every blob before its upload is acknowledged (each "
        "upload then waits for the disk).",
    )
    anonymous_read: bool = Field(
        False, description="Let requests without a token read approved models."
    )
    admin_token: str | None = Field(
        None,
        description="Bootstrap admin token (else made on first start): 'mw_' and at least 32 "
        "more letters, digits, '-' or '_'.",
    )
    public_url: str | None = Field(
        None, description="External base URL (else taken from each request)."
    )
    signed_url_ttl: int = Field(
        300, gt=0, le=86_400, description="Seconds a signed blob URL is valid."
    )
    import_endpoints: list[str] | None = Field(
        None,
        description="Upstream endpoints a server-side import may fetch from (URL prefixes); "
        "unset allows any. Set it so that a publisher cannot make the server reach other hosts.",
    )
    auto_migrate: bool = Field(
        True, description="Apply database migrations at start (always safe on the embedded SQLite)."
    )
    fleet_report_interval: int = Field(
        300,
        gt=0,
        le=86_400,
        description="Seconds between an endpoint agent's reports (told to the agent when it "
        "enrolls; `agent run --interval` overrides it on a host). At most a day.",
    )
    fleet_offline_after: int | None = Field(
        None,
        gt=0,
        le=30 * 86_400,
        description="A host not seen for this many seconds is offline; default: 3 report "
        "intervals. At least fleet_report_interval, at most 30 days.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """First source wins: keyword arguments (command-line options), environment, file."""
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            file_secret_settings,
            _FileSource(settings_cls),
        )

    @field_validator("database_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError("must be a SQLAlchemy URL such as postgresql+psycopg://user@host/db")
        return v

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, v: str | None) -> str | None:
        """An admin token the hub can look up: else it is stored but never accepted (lock-out)."""
        if v is None:
            return v
        body = v[len(ADMIN_TOKEN_PREFIX) :]
        if (
            not v.startswith(ADMIN_TOKEN_PREFIX)
            or len(body) < ADMIN_TOKEN_MIN
            or not (_ADMIN_TOKEN_BODY.fullmatch(body))
        ):
            raise PydanticCustomError(
                "admin_token",
                f"not a valid admin token: it must be '{ADMIN_TOKEN_PREFIX}' followed by at least "
                f"{ADMIN_TOKEN_MIN} letters, digits, '-' or '_' (only such tokens are accepted); "
                f"make one with: {MAKE_TOKEN}",
            )
        return v

    @model_validator(mode="after")
    def _offline_window(self) -> ServerSettings:
        if self.fleet_offline_after is not None and (
            self.fleet_offline_after < self.fleet_report_interval
        ):
            raise ValueError(
                f"fleet_offline_after ({self.fleet_offline_after}) must be at least "
                f"fleet_report_interval ({self.fleet_report_interval}): else every host "
                "shows offline between two reports"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'hub.db'}"

    @property
    def effective_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"


def load_settings(config: Path | None = None, **overrides: Any) -> ServerSettings:
    """Settings from ``config`` (YAML), then the environment, then ``overrides`` (CLI options).

    Each later layer wins over the earlier ones; ``None`` overrides are options not given.
    """
    values: dict[str, Any] = {}
    if config is not None:
        import yaml

        try:
            loaded = yaml.safe_load(config.read_text("utf-8"))
        except OSError as exc:
            raise SettingsError(f"cannot read settings file {config}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"{config}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError(f"{config}: expected a mapping of setting names to values")
        values.update(loaded or {})
    given = {k: v for k, v in overrides.items() if v is not None}
    reset = _FILE_VALUES.set(values)
    try:
        settings = ServerSettings(**given)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "settings"
            where = _origin(str(err["loc"][0]) if err["loc"] else "", given, values, config)
            lines.append(f"  {key}: {err['msg']}{where}")
        if len(lines) == 1:  # one problem: one line
            raise SettingsError("invalid server settings: " + lines[0].strip()) from None
        raise SettingsError("invalid server settings:\n" + "\n".join(lines)) from None
    finally:
        _FILE_VALUES.reset(reset)
    if settings.blob_backend == "s3" and not settings.s3_bucket:
        raise SettingsError("blob_backend is s3 but s3_bucket is not set (MODELWARD_S3_BUCKET)")
    return settings


def _origin(key: str, given: dict[str, Any], file: dict[str, Any], config: Path | None) -> str:
    """Where the winning value of setting ``key`` came from, for an error message."""
    import os

    env = f"MODELWARD_{key.upper()}"
    if key in given:
        return " (command line)"
    if any(name.upper() == env for name in os.environ):
        return f" (environment {env})"
    if key in file and config is not None:
        return f" (in {config})"
    return ""
