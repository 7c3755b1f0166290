"""One settings object for the whole bot.

Settings come from environment variables (``LIBRARIAN_*``, plus ``DATABASE_URL``)
and, optionally, a TOML file named by ``LIBRARIAN_CONFIG``.  The environment wins
over the file.  Secrets (tokens, passwords, the database URL) are accepted only
from the environment, so a config file can be shared or committed safely.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from bot.errors import ConfigError

# Field names that may only come from the environment.
SECRET_FIELDS = frozenset(
    {
        "database_url",
        "matrix_access_token",
        "matrix_password",
        "slack_bot_token",
        "slack_app_token",
        "slack_signing_secret",
        "discord_token",
    }
)


def default_home() -> Path:
    """The platform's user data folder for Librarian."""
    return Path(platformdirs.user_data_dir("librarian", appauthor=False))


class Settings(BaseSettings):
    """Every tunable of the bot, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="LIBRARIAN_",
        extra="ignore",
        populate_by_name=True,
    )

    home: Path = Field(default_factory=default_home)
    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    log_level: str = "INFO"

    # Models.  References are resolved by bot.inference.registry.
    models_path: Path | None = None  # default: LIBRARIAN_HOME/models
    chat_model: str = "smollm2"
    embedding_model: str = "all-minilm-l6-v2"
    n_threads: int = Field(default=0, ge=0)  # 0: use every core
    chat_context: int = Field(default=4096, ge=512)

    # Knowledge defaults for new workspaces.
    chunk_tokens: int = Field(default=200, ge=32, le=4096)
    chunk_overlap: int = Field(default=40, ge=0)
    top_k: int = Field(default=4, ge=1, le=50)
    # Cosine similarity a chunk needs to count as relevant (all-MiniLM-L6-v2 puts unrelated
    # text mostly below 0.2); a chunk holding every term of the question counts too.
    relevance_floor: float = Field(default=0.25, ge=0.0, le=1.0)
    prompt_budget: int = Field(default=3000, ge=256)
    max_file_mb: float = Field(default=50.0, gt=0)

    # Retention.
    retention_interval_minutes: float = Field(default=60.0, gt=0)

    # Permissions: platform-qualified ids, e.g. "console:alice,matrix:@a:example.org".
    admins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Platform secrets (environment only).
    matrix_homeserver: str | None = None
    matrix_user_id: str | None = None
    matrix_access_token: SecretStr | None = None
    matrix_password: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    discord_token: SecretStr | None = None

    @field_validator("admins", mode="before")
    @classmethod
    def _split_admins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("admins")
    @classmethod
    def _qualified_admins(cls, value: list[str]) -> list[str]:
        for admin in value:
            if ":" not in admin:
                raise ValueError(
                    f"{admin!r} is not platform-qualified (write it as console:{admin})"
                )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return upper

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: Any) -> int:
        size = info.data.get("chunk_tokens")
        if size is not None and value >= size:
            raise ValueError(f"must be smaller than chunk_tokens ({size})")
        return value

    @property
    def models_dir(self) -> Path:
        """Where converted, quantized and pulled models live."""
        return self.models_path or self.home / "models"

    @property
    def files_dir(self) -> Path:
        """Where original uploaded bytes are stored by content hash."""
        return self.home / "files"

    @property
    def pgdata_dir(self) -> Path:
        """The embedded Postgres data directory."""
        return self.home / "pgdata"


def _env_name(field: str) -> str:
    return "DATABASE_URL" if field == "database_url" else f"LIBRARIAN_{field.upper()}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"LIBRARIAN_CONFIG: file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"LIBRARIAN_CONFIG: {path} is not valid TOML ({exc})") from exc
    # Allow either top-level keys or a [librarian] table.
    table = data.get("librarian", data)
    known = set(Settings.model_fields)
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.lower().replace("-", "_")
        if name in SECRET_FIELDS:
            raise ConfigError(
                f"{name}: secrets are read only from the environment "
                f"(set {_env_name(name)}), remove it from {path}"
            )
        if name not in known:
            raise ConfigError(f"{key}: unknown setting in {path}")
        out[name] = value
    return out


def load_settings() -> Settings:
    """Read settings from the environment and the optional TOML file.

    Raises ConfigError with one line naming the bad setting.
    """
    env = os.environ
    file_values: dict[str, Any] = {}
    config_path = env.get("LIBRARIAN_CONFIG")
    if config_path:
        file_values = _read_toml(Path(config_path).expanduser())
    # The environment wins: drop file values that the environment also sets.
    for name in list(file_values):
        if _env_name(name) in env:
            file_values.pop(name)
    try:
        settings = Settings(**file_values)
    except SettingsError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error.get("loc", ())) or "settings"
        source = _env_name(field) if field in Settings.model_fields else field
        raise ConfigError(f"{source}: {error.get('msg', 'invalid value')}") from None
    settings.home = settings.home.expanduser()
    return settings
