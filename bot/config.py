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
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
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


# The most shards LIBRARIAN_DISCORD_SHARD_COUNT may name (see Settings).
MAX_DISCORD_SHARDS = 10_000


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
    chunk_overlap: int = Field(default=40, ge=0, le=4095)  # and below chunk_tokens
    top_k: int = Field(default=4, ge=1, le=50)
    # Cosine similarity a chunk needs to count as relevant (all-MiniLM-L6-v2 puts unrelated
    # text mostly below 0.2); a chunk holding every term of the question counts too.
    relevance_floor: float = Field(default=0.25, ge=0.0, le=1.0)
    # Answerability (bot.knowledge.evidence): the share of the question's rare-term weight
    # (BM25 idf in the workspace) the best evidence sentences must hold, and the cosine
    # similarity the best sentence must reach, or the answer is "not found".  Calibrated
    # on the calibrate split of bot/bench/realdocs.jsonl (tools/calibrate_evidence.py),
    # each question asked both in the whole library and in a workspace holding only its
    # document: the pair refusing the most unanswerable questions while keeping at least
    # 85% of the answerable ones (session 7: kept 0.857, refused 0.714 over both kinds of
    # workspace; session 6's 0.425/0.225 kept only 0.556 of the answerable questions
    # asked in their document's own workspace).  See the README, "Grounding".
    evidence_coverage: float = Field(default=0.325, ge=0.0, le=1.0)
    evidence_similarity: float = Field(default=0.225, ge=0.0, le=1.0)
    prompt_budget: int = Field(default=3000, ge=256)
    max_file_mb: float = Field(default=50.0, gt=0)

    # ---- ingestion limits (issue 17) ----
    # A document over one of these is refused with the limit named; what is stored stays.
    # A 120 KB text file of form feeds is 20,000 pages; the largest real manuals run to a
    # few thousand.  10,000 chunks of 200 tokens take the embedder ~5 minutes on 2 cores,
    # the longest one document may hold the queue.
    max_document_pages: int = Field(default=5_000, ge=1, le=1_000_000)
    max_document_chars: int = Field(default=5_000_000, ge=1_000, le=100_000_000)
    max_document_chunks: int = Field(default=10_000, ge=1, le=1_000_000)
    # Chunks a workspace may hold in all (each costs ~2 KB of vector and text).
    max_workspace_chunks: int = Field(default=500_000, ge=1, le=100_000_000)
    # Times a document may fail to be prepared or indexed before it is marked failed.
    ingest_attempts: int = Field(default=3, ge=1, le=20)
    # ---- end ingestion limits ----

    # Retention.
    retention_interval_minutes: float = Field(default=60.0, gt=0)
    # Audit entries older than this are deleted by the retention job.
    audit_retention_days: float = Field(default=90.0, gt=0)

    # Events (a question, a shared file, a command): how many times one is tried before
    # the user is told it failed; the first wait between tries (doubled each time); and
    # how long a claim on an event lasts unless its process renews it (a dead process's
    # events are run again by another, or at the next start, once it has expired).
    event_attempts: int = Field(default=3, ge=1)
    event_retry_seconds: float = Field(default=2.0, ge=0)
    event_lease_seconds: float = Field(default=60.0, gt=0)

    # Models nobody used for this long are unloaded and their memory returned (0: never).
    # The next request loads them again (under a second for the default models).
    model_idle_minutes: float = Field(default=60.0, ge=0)

    # Shared buffers of the embedded Postgres, in MB (0: an eighth of the RAM, 128 MB to
    # 1 GB).  Read when the server starts.  Postgres's default of 128 MB could not hold
    # the vectors and HNSW graph of a 100k-chunk workspace, so every search copied its
    # pages back from the OS cache.
    pg_shared_buffers_mb: int = Field(default=0, ge=0)

    # Which dense-search plans to use (bot.store.search): "auto" takes pgvector 0.8's
    # (halfvec workspace indexes) when the server has pgvector >= 0.8, and the plans
    # written for pgvector 0.6 otherwise; "fallback" always takes the latter.
    vector_plan: Literal["auto", "fallback"] = "auto"
    # How long a process believes what it found about a workspace's own HNSW index (none
    # yet; its kind and size) before looking again: another process may build, grow or
    # replace it.  Also how long an index replaced by an upgrade is kept before it is
    # dropped, so that the other processes have seen its replacement by then.
    index_recheck_seconds: float = Field(default=30.0, gt=0, le=3600)

    # Permissions: platform-qualified ids, e.g. "console:alice,matrix:@a:example.org".
    # Only these may bind a channel to a workspace of another team (bot.teams).
    admins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # OpenAI-compatible servers chat may pick by name (`/librarian model <name>`):
    # "big=http://gpu:8080/v1#llama-3-8b,small=http://...".  Addresses come only from
    # here, never from chat, so a platform admin cannot send a workspace's questions
    # and documents to a server of their choosing.
    remote_models: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)

    # ---- deploy (issue 18) ----
    # A port for /healthz, /readyz and /metrics in this process (unset: no HTTP server).
    http_port: int | None = Field(default=None, ge=0, le=65535)
    http_host: str = "0.0.0.0"
    # "text" (the default) or "json": one JSON object per line, with event ids and no
    # message text (bot.logs).
    log_format: str = "text"
    # A pool of remote servers (LIBRARIAN_CHAT_MODEL=http://a/v1#m,http://b/v1#m): how
    # many answers each server is given at once, and how long a failed one rests before
    # it is probed again.
    pool_slots_per_server: int = Field(default=4, ge=1, le=256)
    pool_rest_s: float = Field(default=10.0, gt=0)

    @field_validator("log_format")
    @classmethod
    def _known_log_format(cls, value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in {"text", "json"}:
            raise ValueError("must be text or json")
        return lowered

    # ---- end deploy ----

    # Platform secrets (environment only).
    matrix_homeserver: str | None = None
    matrix_user_id: str | None = None
    matrix_access_token: SecretStr | None = None
    matrix_password: SecretStr | None = None
    # Slack: LIBRARIAN_SLACK_* or the conventional SLACK_* names.
    slack_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "slack_bot_token", "LIBRARIAN_SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN"
        ),
    )
    slack_app_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "slack_app_token", "LIBRARIAN_SLACK_APP_TOKEN", "SLACK_APP_TOKEN"
        ),
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "slack_signing_secret", "LIBRARIAN_SLACK_SIGNING_SECRET", "SLACK_SIGNING_SECRET"
        ),
    )
    # Discord
    discord_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("LIBRARIAN_DISCORD_TOKEN", "DISCORD_TOKEN", "discord_token"),
    )
    # Discord's REST root and first gateway address (a local emulator in tests).
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    # The privileged Message Content intent (off: only mentions and commands are read).
    discord_message_content: bool = True
    # ---- Discord shards (issue 18) ----
    # Unset: one unsharded connection.  A number: the bot's events are split over that
    # many shards (Discord sends a guild's events to shard (guild_id >> 22) % count, and
    # direct messages to shard 0), every process of the deployment naming the same count;
    # "auto": as many as Discord's /gateway/bot recommends, all run by this process.
    # Discord wants at most 2,500 guilds per shard: 10,000 shards is 25 million guilds.
    discord_shard_count: int | Literal["auto"] | None = None
    # Which shards this process runs: "0,1", a range "0-3", or both ("0-3,8").  Unset: all
    # of them.  Needs a numeric LIBRARIAN_DISCORD_SHARD_COUNT.
    discord_shard_ids: Annotated[list[int] | None, NoDecode] = None

    @field_validator("discord_shard_count", mode="before")
    @classmethod
    def _shard_count(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if not value:  # set but empty (compose's ${VAR:-}): unset
                return None
            if value == "auto":
                return value
            if not value.isdigit():
                raise ValueError(f"{value!r} is not a number of shards or auto")
            value = int(value)
        if isinstance(value, int) and not 1 <= value <= MAX_DISCORD_SHARDS:
            raise ValueError(f"must be between 1 and {MAX_DISCORD_SHARDS}, or auto")
        return value

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _split_shard_ids(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        ids: list[int] = []
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            first, dash, last = part.partition("-")
            if not first.strip().isdigit() or (dash and not last.strip().isdigit()):
                raise ValueError(f"{part!r} is not a shard id (0) or a range of them (0-3)")
            low, high = int(first), int(last) if dash else int(first)
            if high < low:
                raise ValueError(f"{part!r} is an empty range")
            if high >= MAX_DISCORD_SHARDS:
                raise ValueError(f"shard {high} is past the most shards, {MAX_DISCORD_SHARDS}")
            ids.extend(range(low, high + 1))
        return ids or None

    @field_validator("discord_shard_ids")
    @classmethod
    def _shard_ids_in_count(cls, value: list[int] | None, info: Any) -> list[int] | None:
        if value is None:
            return None
        count = info.data.get("discord_shard_count")
        if not isinstance(count, int):
            raise ValueError(
                "needs LIBRARIAN_DISCORD_SHARD_COUNT set to the number of shards of the "
                "whole deployment (every process must name the same count)"
            )
        duplicates = sorted({i for i in value if value.count(i) > 1})
        if duplicates:
            raise ValueError(f"shard {duplicates[0]} is named twice")
        outside = [i for i in value if not 0 <= i < count]
        if outside:
            raise ValueError(
                f"shard {outside[0]} does not exist: with {count} shards the ids are "
                f"0 to {count - 1}"
            )
        return value

    def discord_shards(self) -> dict[str, Any] | None:
        """The Discord shards this process runs, for ``status``; None when unsharded.

        ``count``: the deployment's number of shards, or "auto" (as many as Discord
        recommends, learnt when connecting); ``ids``: this process's shards, None for
        every shard of an "auto" count.
        """
        count = self.discord_shard_count
        if count is None:
            return None
        ids = self.discord_shard_ids
        if ids is None and isinstance(count, int):
            ids = list(range(count))
        return {"count": count, "ids": ids}

    # ---- end Discord shards ----

    # Matrix
    # Admin: this power level in the room, or more (room creators in v12+ rooms too).
    matrix_admin_power_level: int = 50
    # Who may invite the bot into rooms: user ids (@alice:example.org) and server names
    # (example.org), comma-separated.  Empty: everyone.
    matrix_autojoin: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Rooms an operator declares one team (bot.teams): "eng=!a:example.org,!b:example.org;
    # ops=!c:example.org".  A room not listed is a team of its own.
    matrix_teams: Annotated[dict[str, list[str]], NoDecode] = Field(default_factory=dict)

    # Slack
    # The Web API root (a test emulator, or a proxy); Socket Mode follows the websocket
    # URL that apps.connections.open returns.
    slack_api_url: str = "https://slack.com/api/"
    # "socket" (needs the app token) or "http" (Events API; needs the signing secret).
    # Empty: Socket Mode when an app token is set, else HTTP.
    slack_mode: str = ""
    # HTTP mode: where the bot's web server listens; Slack posts to <url>/slack/events.
    slack_http_host: str = "0.0.0.0"
    slack_http_port: int = Field(default=3000, ge=0, le=65535)
    # How often documents whose Slack file was deleted are looked for and forgotten.
    slack_reconcile_minutes: float = Field(default=60.0, gt=0)

    @property
    def slack_configured(self) -> bool:
        """Whether the Slack adapter has what it needs to connect."""
        return bool(self.slack_bot_token and (self.slack_app_token or self.slack_signing_secret))

    @field_validator("slack_mode")
    @classmethod
    def _slack_mode(cls, value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in {"", "socket", "http"}:
            raise ValueError("must be socket or http")
        return lowered

    @field_validator("matrix_teams", mode="before")
    @classmethod
    def _split_teams(cls, value: Any) -> Any:
        # Room ids hold ":" and "!" but never ";", "=" or ",".
        if isinstance(value, str):
            teams: dict[str, list[str]] = {}
            for part in value.split(";"):
                if not part.strip():
                    continue
                name, sep, rooms = part.partition("=")
                if not sep or not name.strip():
                    raise ValueError(f"{part.strip()!r} is not name=!room:server,...")
                teams[name.strip()] = [r.strip() for r in rooms.split(",") if r.strip()]
            return teams
        return value

    @field_validator("remote_models", mode="before")
    @classmethod
    def _split_remotes(cls, value: Any) -> Any:
        if isinstance(value, str):
            remotes: dict[str, str] = {}
            for part in value.split(","):
                if not part.strip():
                    continue
                name, sep, url = part.partition("=")
                if not sep or not name.strip():
                    raise ValueError(f"{part.strip()!r} is not name=http://host:port/v1")
                remotes[name.strip()] = url.strip()
            return remotes
        return value

    @field_validator("remote_models")
    @classmethod
    def _remote_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{name}: {url!r} is not an http(s) address")
        return value

    @field_validator("admins", "matrix_autojoin", mode="before")
    @classmethod
    def _split_admins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def matrix_configured(self) -> bool:
        """Whether the Matrix adapter has what it needs to log in."""
        return bool(
            self.matrix_homeserver
            and self.matrix_user_id
            and (self.matrix_access_token or self.matrix_password)
        )

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
        message = str(error.get("msg", "invalid value"))
        # A validator's own words, without pydantic's "Value error, " before them.
        message = message.removeprefix("Value error, ")
        raise ConfigError(f"{source}: {message}") from None
    settings.home = settings.home.expanduser()
    return settings


def describe_discord_shards(shards: dict[str, Any]) -> str:
    """:meth:`Settings.discord_shards` in words, the ids written as
    LIBRARIAN_DISCORD_SHARD_IDS takes them: "1 of 2", "0-3,8 of 16", or "all that
    Discord recommends (auto)"."""
    ids = shards["ids"]
    if ids is None:
        return "all that Discord recommends (auto)"
    runs: list[list[int]] = []
    for shard in sorted(ids):
        if runs and shard == runs[-1][1] + 1:
            runs[-1][1] = shard
        else:
            runs.append([shard, shard])
    written = ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)
    return f"{written} of {shards['count']}"
