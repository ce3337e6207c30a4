"""All configuration, in one typed class.

Values come from, highest priority first (the nearer wins):

1. command-line options (``--data-dir``);
2. environment variables prefixed ``MUSIC_TRACKER_``;
3. the working directory: its ``.env``, then its ``music-tracker.toml`` (or the TOML file
   named by ``MUSIC_TRACKER_CONFIG`` instead);
4. the user's config folder, ``$XDG_CONFIG_HOME/music-tracker/`` (``~/.config/music-tracker/``
   by default): its ``.env``, then its ``music-tracker.toml``; read wherever the command runs;
5. the defaults below.

``settings_files()`` names the files that exist, which are the ones read (``status`` shows
them). No secret lives here: with PKCE Spotify needs no client secret, and tokens are kept
in ``state/`` (mode 0600), never printed or logged.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

# The checkout the package runs from (src/music_tracker/settings.py, two folders up): its
# transform/ (the dbt project) and dashboards/ belong to the code, not to a data folder
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILE_ENV = "MUSIC_TRACKER_CONFIG"
DEFAULT_CONFIG_FILE = "music-tracker.toml"
ENV_FILE = ".env"
USER_CONFIG_FOLDER = "music-tracker"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_UNITS |= {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def memory_bytes(size: str) -> int:
    """``256MB`` or ``1.5GiB`` (the settings' memory sizes) in bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", size)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a memory size: {size!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class Settings(BaseSettings):
    """Music Tracker settings; see ``.env.example`` for every variable with its meaning."""

    model_config = SettingsConfigDict(
        env_prefix="MUSIC_TRACKER_",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(
        default=Path("data"), description="Root of warehouse, landing/, state/, ..."
    )
    timezone: str = Field(
        default="America/Denver",
        description="IANA zone for local dates and times (the original used Mountain time).",
    )
    stream_threshold_ms: int = Field(
        default=30_000,
        ge=0,
        description="A play counts as a stream at or above this many ms (Spotify's rule: 30 s).",
    )
    calendar_last_day: date | None = Field(
        default=None,
        description="Last day of dw.dim_date (empty: 30 days after the day of the build; "
        "never before the last play's day). Set, builds on different days give the same "
        "calendar (the tests pin it).",
    )
    # Cross-source matching tolerances (docs/deduplication.md, "Across sources").
    match_tolerance_api_s: int = Field(default=10, ge=0)
    match_tolerance_account_s: int = Field(default=60, ge=0)
    match_tolerance_lastfm_s: int = Field(default=90, ge=0)
    match_pause_s: int = Field(
        default=900,
        ge=0,
        description="How long a paused play may have been paused: a Last.fm start this much "
        "before an end-time row's estimated start still matches it (0: off).",
    )

    spotify_client_id: str = ""
    spotify_api_base: str = "https://api.spotify.com/v1"
    spotify_accounts_base: str = "https://accounts.spotify.com"
    spotify_redirect_port: int = 8888
    spotify_requests_per_run: int = Field(default=500, ge=1)

    musicbrainz_base: str = "https://musicbrainz.org/ws/2"
    musicbrainz_retry_days: int = Field(
        default=30, ge=0, description="A MusicBrainz miss is retried after this many days."
    )
    musicbrainz_min_score: int = Field(
        default=90, ge=0, le=100, description="Lowest name-search score accepted as a match."
    )
    musicbrainz_requests_per_run: int = Field(default=3600, ge=1)
    musicbrainz_min_interval_s: float = Field(
        default=1.05,
        gt=0,
        description=(
            "Seconds between MusicBrainz requests. The service allows one a second; a shorter "
            "interval is accepted only for a server on the loopback (the tests' fake)."
        ),
    )
    contact: str = Field(
        default="",
        description="Owner's e-mail or URL, sent in the MusicBrainz User-Agent.",
    )
    duckdb_memory_limit: str = Field(
        default="128MB", description="DuckDB memory cap for pipeline connections."
    )
    dbt_memory_limit: str = Field(
        default="256MB", description="DuckDB memory cap while dbt builds the star schema."
    )
    dbt_threads: int = Field(
        default=0,
        ge=0,
        le=16,
        description=(
            "Models dbt builds at once; they share the memory cap. 0: automatic, 4 up to one "
            "stored play per 128 bytes of MUSIC_TRACKER_DBT_MEMORY_LIMIT (about 2.1 million "
            "plays at 256MB), 1 above, where two models over every play no longer fit the "
            "cap together."
        ),
    )
    transform_replay: bool = Field(
        default=True,
        description=(
            "A changed-data build runs the statements dbt issued for its last build of the"
            " same selection instead of starting dbt (a second or two instead of 8-13 CPU-"
            "seconds); false: every build starts dbt."
        ),
    )
    dbt_target_dir: Path | None = Field(
        default=None,
        description=(
            "Where dbt keeps compiled SQL and its parse cache (default: the dbt project's "
            "target/). Two dbt runs at once need two folders (the tests' parallel workers)."
        ),
    )
    http_timeout_s: float = Field(default=20.0, gt=0)

    # The schedule (docs/orchestration.md): `music-tracker serve` runs these.
    ingest_interval_minutes: float = Field(
        default=10, gt=0, description="Spotify is polled this often (it keeps the last 50 plays)."
    )
    transform_min_interval_minutes: float = Field(
        default=10,
        ge=0,
        description="After new plays, transform and publish at most this often.",
    )
    refresh_cron: str = Field(
        default="5 * * * *",
        description="When the hourly refresh runs (transform, publish, report if anything "
        "changed), a cron expression in schedule_timezone.",
    )
    schedule_timezone: str = Field(
        default="", description="IANA zone of the cron expressions (empty: the timezone)."
    )
    enrich_artists_per_run: int = Field(
        default=30, ge=0, description="MusicBrainz artists looked up after each ingest."
    )
    podcast_shows: list[str] = Field(
        default_factory=list,
        description="Names in old account data (before 2023) that are podcast shows, "
        'whatever the evidence says (JSON list: ["Show A", "Show B"]).',
    )
    not_podcasts: list[str] = Field(
        default_factory=list,
        description="Names in old account data that are music, never podcast shows "
        "(JSON list), for an artist the evidence took for a show.",
    )
    import_max_file_mb: int = Field(
        default=1024,
        ge=1,
        description="The largest file (uncompressed) an import reads: history files are "
        "10-20 MB; a larger one is refused before it is extracted (zip bombs).",
    )
    min_free_mb: int = Field(
        default=256,
        ge=0,
        description="Free disk space an import leaves beside the files it copies into "
        "landing/ (the warehouse and its write-ahead log grow too); below it the import is "
        "refused before anything is written.",
    )
    lock_wait_s: float = Field(
        default=10,
        ge=0,
        description="How long a command waits for another writer (the writer lock), and how "
        "long anything opening the warehouse waits for another process to let go of the file "
        "(DuckDB's own lock: a DuckDB shell, a moment of `status`), before it gives up.",
    )
    writer_wait_s: float = Field(
        default=240,
        ge=0,
        description="How long a flow (and `enrich`, before each stored lookup) waits for "
        "another writer to finish (the writer lock) before it skips.",
    )
    task_retries: int = Field(default=3, ge=0, description="Retries of network tasks.")
    run_timeout_minutes: float = Field(
        default=45,
        gt=0,
        description="A scheduled ingest or refresh run still going after this long is "
        "stopped (its process killed), reported as crashed and alerted, and the next run goes "
        "on; a backup gets three times as long (docs/orchestration.md).",
    )
    scheduler: Literal["prefect", "lite"] = Field(
        default="prefect",
        description="What `serve` runs the schedules with: a Prefect server (the full plan; "
        "its UI shows every run) or, on the 1 GB lite plan, a loop of its own without one "
        "(docs/orchestration.md, 'The lite plan').",
    )
    watchdog_interval_s: float = Field(
        default=60,
        gt=0,
        description="How often `serve` checks its runs' time limits and its liveness "
        "(state/health.json, which the container healthcheck reads).",
    )
    task_retry_delay_s: float = Field(
        default=20, ge=0, description="First retry delay; it doubles with each retry."
    )
    notify_webhook_url: SecretStr = Field(
        default=SecretStr(""),
        description="Where failure and recovery messages go (a Slack, Discord or ntfy URL).",
    )
    notify_format: Literal["slack", "discord", "ntfy"] = "slack"
    prefect_port: int = Field(
        default=4200, ge=1, le=65535, description="Port of the Prefect server serve starts."
    )

    # Backups (docs/operations.md).
    backup_dir: Path | None = Field(
        default=None, description="Where backups go (default: backups/ beside the data folder)."
    )
    backup_keep: int = Field(default=7, ge=1, description="How many backups are kept.")
    backup_cron: str = Field(
        default="30 3 * * *", description="When `serve` backs up (cron, schedule_timezone)."
    )
    backup_bucket: str = Field(
        default="",
        description="Also keep the backups in this S3-compatible bucket, as s3://bucket/prefix"
        " (a Lightsail bucket); credentials from the environment or the instance.",
    )
    backup_bucket_endpoint: str = Field(
        default="", description="The bucket's endpoint URL when it is not AWS S3 (empty: AWS)."
    )
    backup_bucket_region: str = Field(
        default="", description="The bucket's AWS region (empty: the SDK's default)."
    )
    metabase_app_db_dir: Path | None = Field(
        default=None,
        description="Metabase's application database folder (H2), backed up when set.",
    )

    # Publishing (the serving copy Metabase reads) and Metabase itself (docs/metabase.md).
    serving_grace_minutes: float = Field(
        default=15,
        ge=0,
        description=(
            "A replaced serving copy is deleted this long after its successor appeared, once "
            "Metabase no longer points at it (queries still running on it can finish)."
        ),
    )
    metabase_url: str = Field(
        default="",
        description="Metabase's address as the pipeline reaches it; empty: no Metabase.",
    )
    metabase_site_url: str = Field(
        default="",
        description="Metabase's public https address (MB_SITE_URL), used in public links.",
    )
    metabase_admin_email: str = ""
    metabase_admin_password: SecretStr = SecretStr("")
    metabase_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="An API key (Admin > Settings > Authentication); used instead of a login.",
    )
    metabase_serving_dir: str = Field(
        default="/serving",
        description="Where the data folder's serving/ is mounted inside the Metabase container.",
    )
    metabase_database_name: str = "Music Tracker"
    metabase_collection: str = "Music Tracker"
    metabase_duckdb_memory_limit: str = Field(
        default="384MB", description="DuckDB memory cap inside Metabase (the driver's setting)."
    )
    metabase_wait_s: float = Field(
        default=300,
        ge=0,
        description="How long provision waits for a starting Metabase, and for a sync.",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR (any case).")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            msg = f"not a log level: use one of {', '.join(LOG_LEVELS)}"
            raise ValueError(msg)
        return value.upper()

    @field_validator("duckdb_memory_limit", "dbt_memory_limit", "metabase_duckdb_memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        # checked here, with the other settings, before any file is touched: DuckDB would
        # only refuse it when a connection opens, after landing/ was created
        if not MEMORY_SIZE.fullmatch(value.strip()):
            msg = "not a memory size: write a number and a unit, like 128MB, 1.5GB or 512MiB"
            raise ValueError(msg)
        return value.strip()

    @field_validator("calendar_last_day", mode="before")
    @classmethod
    def _day_or_empty(cls, value: object) -> object:
        # an empty value (.env.example's) is the default; anything else is a day (pydantic
        # would take a TOML number for seconds since 1970)
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, int | float) or (
            isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip())
        ):
            raise ValueError("not a day: write it as YYYY-MM-DD, like 2027-01-31")
        return value.strip() if isinstance(value, str) else value

    @field_validator("data_dir", "dbt_target_dir", "backup_dir", "metabase_app_db_dir")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        # "~/mt" in a .env or TOML file reaches us unexpanded (no shell in between)
        return value.expanduser() if value is not None else None

    @field_validator("data_dir")
    @classmethod
    def _no_question_mark(cls, value: Path) -> Path:
        # DuckDB reads a "?" in a database path as the start of options: the warehouse's
        # write-ahead log lands elsewhere ("we?x/warehouse.duckdb" -> "we.wal?x/...") and
        # the first commit fails
        if "?" in str(value):
            raise ValueError(
                "contains '?', which DuckDB cannot use in a database path: rename the folder"
            )
        return value

    @field_validator("metabase_url", "metabase_site_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and (
            urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc
        ):
            msg = "not an http(s) address: write it like http://metabase:3000 or https://music.example.com"
            raise ValueError(msg)
        return value

    @field_validator("metabase_serving_dir")
    @classmethod
    def _absolute_dir(cls, value: str) -> str:
        if not value.startswith("/"):
            msg = "the serving folder's path inside the Metabase container, absolute: /serving"
            raise ValueError(msg)
        return value

    @field_validator("backup_bucket")
    @classmethod
    def _bucket_url(cls, value: str) -> str:
        if value and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^/].*)?", value):
            msg = "not a bucket URL: s3://bucket-name or s3://bucket-name/prefix"
            raise ValueError(msg)
        return value.rstrip("/")

    @field_validator("refresh_cron", "backup_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from cronsim import CronSim, CronSimError

        try:
            CronSim(value, datetime.now())
        except CronSimError as exc:
            msg = f"not a cron expression ({exc}): five fields, like '5 * * * *'"
            raise ValueError(msg) from exc
        return value

    @field_validator("timezone", "schedule_timezone")
    @classmethod
    def _known_zone(cls, value: str, info: ValidationInfo) -> str:
        if not value and info.field_name == "schedule_timezone":  # empty: the timezone
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = "not an IANA time zone name (for example America/Denver or Europe/Berlin)"
            raise ValueError(msg) from exc
        return value

    @model_validator(mode="after")
    def _musicbrainz_rate(self) -> Settings:
        host = urlsplit(self.musicbrainz_base).hostname or ""
        if self.musicbrainz_min_interval_s < 1.0 and host not in LOOPBACK_HOSTS:
            msg = (
                f"MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S={self.musicbrainz_min_interval_s!r}: "
                f"MusicBrainz allows one request a second; use 1.0 or more for {host}"
            )
            raise ValueError(msg)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files: list[PydanticBaseSettingsSource] = [
            DotEnvSettingsSource(settings_cls, env_file=path)
            if path.name == ENV_FILE
            else TomlConfigSettingsSource(settings_cls, toml_file=path)
            for path in _candidate_files()
        ]
        return (init_settings, env_settings, *files)

    # Paths under the data dir (docs/architecture.md, "The data folder").
    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def serving_dir(self) -> Path:
        return self.data_dir / "serving"

    @property
    def report_dir(self) -> Path:
        return self.data_dir / "report"


def problems(exc: ValidationError | SettingsError) -> list[str]:
    """Settings that failed to load, one line each naming the variable and what to do."""
    if isinstance(exc, SettingsError):
        # a list setting whose value is not JSON: pydantic-settings fails before validating
        named = re.search(r'field "(\w+)"', str(exc))
        name = f"MUSIC_TRACKER_{named.group(1).upper()}" if named else "a MUSIC_TRACKER_ setting"
        value = os.environ.get(name)
        shown = f"{name}={value!r}" if value is not None else name
        return [f'{shown}: not a JSON list; use a JSON list, such as ["Name A", "Name B"]']
    lines = []
    for problem in exc.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"])
        reason = str(problem["msg"]).removeprefix("Value error, ")
        # a rule across settings names them itself; one setting is named with its value
        value = problem.get("input")
        shown = str(value) if isinstance(value, Path) else value
        lines.append(f"MUSIC_TRACKER_{field.upper()}={shown!r}: {reason}" if field else reason)
    return lines


def user_config_dir() -> Path | None:
    """The user's config folder for Music Tracker (XDG: ``$XDG_CONFIG_HOME/music-tracker``,
    ``~/.config/music-tracker`` when that is unset); None without a home folder (a service
    account), where only the working directory and the environment count."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not Path(base).is_absolute():  # the XDG spec: a relative value is to be ignored
        try:
            base = str(Path.home() / ".config")
        except RuntimeError:
            return None
    return Path(base) / USER_CONFIG_FOLDER


def settings_folder_here() -> Path | None:
    """The working directory (None when it was deleted under the command: no file there)."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        return None


def _working_directory_files() -> list[Path]:
    """The working directory's .env and TOML file (or MUSIC_TRACKER_CONFIG's)."""
    named = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE)).expanduser()
    here = settings_folder_here()
    if here is None:
        return [named] if named.is_absolute() else []
    return [here / ENV_FILE, here / named]


def _candidate_files() -> list[Path]:
    """Every file settings may come from, highest priority first (the module's docstring)."""
    candidates = _working_directory_files()
    folder = user_config_dir()
    if folder is not None:
        candidates += [folder / ENV_FILE, folder / DEFAULT_CONFIG_FILE]
    unique: dict[Path, None] = {}
    for path in candidates:  # run from the config folder itself, its files count once
        unique.setdefault(path.absolute(), None)
    return list(unique)


def settings_files() -> list[Path]:
    """The files settings were read from, highest priority first: those that exist."""
    return [path for path in _candidate_files() if path.is_file()]


# MUSIC_TRACKER_ variables that are not settings: the config file's path, what the tests
# read, and what `transform` sets for dbt while it runs
_NOT_SETTINGS = {"CONFIG", "SHARED", "TEST_ARTIFACTS", "WAREHOUSE"}


def unknown_settings() -> list[str]:
    """Warnings for names that look like settings but are none (a typo is otherwise
    silently ignored): MUSIC_TRACKER_ variables in the environment or a .env file, and keys
    of a TOML file (spelled like the fields: ``timezone = "Europe/Berlin"``)."""
    from dotenv import dotenv_values

    known = set(Settings.model_fields)
    warnings: list[str] = []
    env_names = dict.fromkeys(os.environ)
    files = settings_files()
    for env_file in (path for path in files if path.name == ENV_FILE):
        env_names.update(dict.fromkeys(k for k in dotenv_values(env_file) if k))
    for name in env_names:
        if not name.startswith("MUSIC_TRACKER_"):
            continue
        field = name.removeprefix("MUSIC_TRACKER_")
        if field.lower() not in known and field not in _NOT_SETTINGS:
            warnings.append(f"{name} is not a Music Tracker setting and is ignored")
    named = os.environ.get(CONFIG_FILE_ENV)
    toml = _working_directory_files()[-1:]  # the file it names, where it is looked for
    if named and not (toml and toml[0].is_file()):
        warnings.append(f"{CONFIG_FILE_ENV}={named}: no such file; no TOML file was read there")
    for config in (path for path in files if path.name != ENV_FILE):
        import tomllib

        try:
            keys = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            warnings.append(f"{config}: not readable TOML ({exc})")
            keys = {}
        for key in keys:
            if key not in known:
                hint = (
                    f" (write {key.removeprefix('MUSIC_TRACKER_').lower()})"
                    if key.removeprefix("MUSIC_TRACKER_").lower() in known
                    else ""
                )
                warnings.append(f"{config}: {key!r} is not a setting and is ignored{hint}")
    return warnings


@lru_cache(maxsize=1)
def _cached_settings() -> Settings:
    return Settings()


def get_settings(**overrides: Any) -> Settings:
    """Return the settings; overrides (from CLI options) win over every other source."""
    if not overrides:
        return _cached_settings()
    return Settings(**overrides)


def cap_hint(
    settings: Settings,
    what: str,
    state: str = "the write was rolled back and nothing stored was lost",
) -> str:
    """What to do when ``what`` ran out of DuckDB's memory cap: the cap it ran under (dbt's
    for a build and its replay, else the one of imports and the other commands), with its
    value and default; ``state``: what became of the data."""
    field = "dbt_memory_limit" if what == "transform" else "duckdb_memory_limit"
    # DuckDB's error names the cap in force: an import's, while it stores, is lower
    # (importers/run.py, STORING_SHARE)
    share = ", of which an import stores its rows under three quarters" if what == "import" else ""
    return (
        f"`{what}` needed more than DuckDB's memory cap (MUSIC_TRACKER_{field.upper()}="
        f"{getattr(settings, field)}{share}); {state}. Raise the cap (the default is "
        f"{Settings.model_fields[field].default}) or free memory, then run "
        f"`music-tracker {what}` again"
    )
