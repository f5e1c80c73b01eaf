"""Process settings: environment variables (prefix LEADFLOW_) or a .env file."""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.config.kafka import KafkaConnection, SaslMechanism, SecurityProtocol
from pipeline.errors import ConfigError
from schemas.envelope import utcnow

if TYPE_CHECKING:
    from pipeline.config.topics import TopicSpec

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The source checkout, for what only a checkout has (git, bench/, docs/); an
installed package finds its own files under `SHIPPED_DIR`, never here."""
SHIPPED_DIR = Path(str(resources.files("pipeline").joinpath("defaults")))
"""The files the package ships (wheel package data, found where the package is
installed): the topic registry, the default rules, the ClickHouse migrations and
the local broker's Maven pom. pip unpacks a wheel, so this is a directory on disk."""
SHIPPED_TOPICS = SHIPPED_DIR / "topics.yaml"
SHIPPED_RULES = SHIPPED_DIR / "rules"
STATE_DIR_NAME = ".leadflow"
"""The state directory by default: `.leadflow` in the directory the command starts
in (a checkout's root for `make`), made absolute at start so every process the
command starts uses the same one. Services set LEADFLOW_STATE_DIR."""
NAME_MATCH = 100.0
"""How alike (rapidfuzz ratio, 0-100) the last names of two people at one company
must be to be one person, by default (`LEADFLOW_IDENTITY_NAME_MATCH`; identity
resolution takes the value as `IdentityBook.name_match`): the same (folded) name.
Every other part of the name (the first name above all) must always be the same:
"Lea Koch" and "Lena Koch" are two people. Hofmann and Hoffmann are two common
names, so a lower value (90 accepts one missing letter in a name of five or more)
is the operator's choice, not the default."""
DEFAULT_INPUT_MAX_BYTES = 256 * 1024
"""Far above any real form, mail, tracked activity or CRM update; a larger message
from outside is junk or an attack (`LEADFLOW_INPUT_MAX_BYTES`; the stages pass it to
`decode` as `max_bytes`)."""


DEFAULT_REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
"""Where a replicated warehouse table keeps its coordination data in ClickHouse
Keeper: `{shard}` from each server's macros, `{database}` and `{table}` from the
statement, so every table has its own path."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", env_file=".env", frozen=True)

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated."
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="How clients talk to the brokers: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or "
        "SASL_SSL (user and password over TLS: Confluent Cloud, MSK, Aiven).",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        default="PLAIN",
        description="SASL mechanism for SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the brokers' certificates (default: "
        "the system's trusted CAs).",
    )
    kafka_ssl_cert_file: Path | None = Field(
        default=None, description="PEM client certificate (mutual TLS), with its key file."
    )
    kafka_ssl_key_file: Path | None = Field(
        default=None, description="PEM private key of the client certificate."
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of an encrypted client key."
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True,
        description="Check that a broker's certificate names the host connected to.",
    )
    state_dir: Path = Field(
        default_factory=lambda: Path.cwd() / STATE_DIR_NAME,
        description="Local broker data, table state and the embedded warehouse "
        "(default: .leadflow in the working directory; a relative path is taken from it).",
    )
    topics_file: Path = Field(
        default=SHIPPED_TOPICS,
        description="The topic registry: the shipped topics.yaml, or an operator's own copy.",
    )
    topic_prefix: str = Field(
        default="", pattern=r"^[A-Za-z0-9._-]*$", description="Prefix for every topic name."
    )
    rules_dir: Path = Field(
        default=SHIPPED_RULES,
        description="Business rules RevOps edits: scoring, nurture, routing, … (default: the "
        "shipped examples; `leadflow rules copy DIR` makes an editable copy).",
    )
    force_experiment_changes: bool = Field(
        default=False,
        description="Start even though a running experiment's definition (experiments.yaml "
        "and its variants' files) differs from the one this state directory recorded; "
        "its leads' variants and rules change mid-run (`leadflow worker --force`).",
    )
    topic_replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replicas of each topic `topics apply` creates (3 on a production "
        "cluster); a live topic with another count is reported as drift.",
    )
    topic_min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="min.insync.replicas of each topic `topics apply` creates (2 with 3 "
        "replicas: a write is acknowledged by two brokers); unset: the broker's default. "
        "A live topic with another value is reported as drift.",
    )
    default_region: str = Field(
        default="DE",
        pattern=r"^[A-Z]{2}$",
        description="ISO country for phone numbers and postal codes given without one.",
    )
    identity_name_match: float = Field(
        default=NAME_MATCH,
        ge=50,
        le=100,
        description="How alike (0-100, rapidfuzz ratio) the last names of two people at "
        "the same company must be to be one person; every other part of the name must be "
        "the same, and a different e-mail or phone always makes two people. Default 100: "
        "the same full name.",
    )

    app_id: str = Field(default="leadflow", description="Consumer group prefix of the worker.")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    intake_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='API key per channel for POST /v1/inquiries, as JSON: {"web_form": "…"}.',
    )
    claim_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="API key per rep for POST /v1/queues/{queue}/claim (pull queues), "
        'as JSON: {"anna.schmidt": "…"}.',
    )
    operator_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="API key per operator for the read endpoints (queues, reports, warehouse), "
        'as JSON: {"revops": "…"}. Empty: the worker makes one in STATE_DIR/operator.key.',
    )
    form_keys: dict[str, str] = Field(
        default_factory=dict,
        description='Public form keys for browsers, JSON {"<form key>": "<channel>"}: a plain '
        "HTML form posts to /v1/forms/<form key>. Not a secret (it is in the page): it only "
        "names the channel, is rate-limited per form and address, and opens nothing else.",
    )
    form_origins: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Origins whose pages may post a channel\'s forms, JSON {"web_form": '
        '["https://www.example.com"]}: CORS for fetch(), and a browser post from another '
        "origin is refused (403). A channel without an entry takes posts from any origin.",
    )
    form_redirects: dict[str, str] = Field(
        default_factory=dict,
        description='Thank-you page per channel, JSON {"web_form": "https://…/thanks"}: a plain '
        "form post that was accepted is answered 303 to it (fetch() and JSON get 202).",
    )
    form_honeypot: str = Field(
        default="website",
        min_length=1,
        description="A form field hidden from people: a post that fills it is a bot's (it is "
        "answered as accepted and kept on leads.rejected with reason honeypot).",
    )
    form_requests_per_minute: int = Field(
        default=30, ge=1, description="Posts one form takes per minute from one address."
    )
    form_burst: int = Field(default=5, ge=1, description="Posts one address may send at once.")
    intake_max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest request body any endpoint takes (413 above it); at most 1 MiB, "
        "the broker's default message size.",
    )
    max_message_bytes: int = Field(
        default=1_000_000,
        ge=512 * 1024,
        description="Largest message the worker sends (its producer's max_request_size; keep "
        "it at or below the broker's message.max.bytes, about 1 MB by default). An event "
        "that would be larger is a rejection of the input that caused it, never a crash.",
    )
    input_max_bytes: int = Field(
        default=DEFAULT_INPUT_MAX_BYTES,
        ge=1024,
        description="Largest message taken from a topic outside producers write to "
        "(inquiries, activities, CRM outcomes: `external` in topics.yaml); a larger one is "
        "rejected as too_large and not stored in the warehouse. At most "
        "LEADFLOW_MAX_MESSAGE_BYTES; keep it well below, so the events made from an input fit "
        "in a message.",
    )
    input_max_age_days: float = Field(
        default=365.0,
        gt=0,
        description="An input dated further back than this is implausible: an inquiry gets a "
        "finding (the time it reached Leadflow counts as its arrival), an activity or CRM "
        "outcome is rejected (occurred_at_implausible), so no report measures from 1970.",
    )
    inquiry_max_ahead_minutes: float = Field(
        default=60.0,
        ge=0,
        description="An inquiry dated further ahead than this (clock skew) is implausible.",
    )
    http_requests_per_minute: int = Field(
        default=600, ge=1, description="Requests per minute per API key (429 above it)."
    )
    http_burst: int = Field(default=60, ge=1, description="Requests one key may send at once.")
    table_store: str = Field(
        default="rocksdb://", description="Faust table store: rocksdb:// or memory://"
    )
    malloc_arenas: int = Field(
        default=2,
        ge=0,
        description="glibc malloc arenas of the worker process (0: glibc's default, eight "
        "per core): fewer arenas keep less freed memory resident.",
    )
    table_memory_mib: int = Field(
        default=128,
        ge=16,
        description="Memory all RocksDB table databases of one worker share (blocks read, "
        "index and filter blocks, memtables): RocksDB's part of resident memory stays "
        "under it however many leads the worker holds.",
    )

    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="exactly_once: each stage reads, writes and commits in one Kafka transaction.",
    )
    commit_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often each stage commits its source offsets (after flushing what it "
        "sent): longer means fewer commits, more messages read again after a crash.",
    )
    producer_linger_ms: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="How long the worker's producer waits to fill a batch: fewer, larger "
        "requests for a little latency per hop (5 ms: a quarter less CPU per message in the "
        "pass-through benchmark than 0, at most 35 ms more over the seven hops).",
    )
    session_timeout_seconds: float = Field(
        default=30.0,
        ge=6.0,
        description="How long the group waits for a silent worker before others take over.",
    )

    clickhouse_url: SecretStr | None = Field(
        default=None,
        description="http(s)://user:password@host:8123/database – use a ClickHouse server "
        "instead of the embedded engine.",
    )
    clickhouse_cluster: str | None = Field(
        default=None,
        description="Name of a ClickHouse cluster (from the servers' <remote_servers>) to "
        "run the warehouse's DDL on: every table, view and database is made ON CLUSTER, "
        "every MergeTree engine Replicated. One shard with any number of replicas. Needs "
        "LEADFLOW_CLICKHOUSE_URL (one node of the cluster).",
    )
    clickhouse_replica_path: str = Field(
        default=DEFAULT_REPLICA_PATH,
        description="ClickHouse Keeper path of each replicated table (server macros "
        "{shard}, {database}, {table}); the replica name is the {replica} macro.",
    )
    warehouse_dir: Path | None = Field(
        default=None, description="Embedded warehouse directory (default: STATE_DIR/warehouse)."
    )
    requalify_scan_seconds: float = Field(
        default=60.0, gt=0, description="How often the worker looks for due re-qualifications."
    )
    sla_minute_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Length of one SLA minute in seconds (tests and demos shrink the clock).",
    )
    outcome_wait_seconds: float = Field(
        default=900.0,
        gt=0,
        description="How long a CRM outcome for a lead with no owner yet is held (a CRM can "
        "overtake the assignment by moments); then it goes to leads.rejected (unknown_lead).",
    )
    warehouse_sink: bool = Field(
        default=True,
        description="Run the warehouse sink in this worker. Exactly one process owns an "
        "embedded warehouse: workers that only route set false.",
    )
    nurture_day_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="Length of one nurture day in seconds: program delays and frequency-cap "
        "windows (tests and demos shrink the clock; quiet hours stay on the real clock).",
    )
    nurture_scan_seconds: float = Field(
        default=10.0, gt=0, description="How often the worker looks for due nurture steps."
    )
    sql_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Longest an analyst's query (POST /v1/sql, leadflow report sql) may run; "
        "it runs in a warehouse session of its own, apart from reports and the sink.",
    )
    sql_max_rows: int = Field(
        default=10_000, ge=1, description="About how many rows an analyst's query returns."
    )
    sql_max_memory_bytes: int = Field(
        default=1_000_000_000,
        ge=10_000_000,
        description="Memory one analyst query may use in the warehouse.",
    )
    warehouse_raw_retention_days: int | None = Field(
        default=None,
        ge=30,
        description="Days the raw event log (lead_events) keeps an event after it happened; "
        "unset: for ever. The lead state and the report tables keep their figures; the "
        "timeline, exports and the reports that read raw events see only what is kept.",
    )
    sink_batch_size: int = Field(default=5000, ge=1)
    sink_flush_seconds: float = Field(default=1.0, gt=0)
    sink_retry_max_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause between retries of a failed warehouse insert.",
    )

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    faust_log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="warning", description="Faust's own log (recovery, rebalances): info to debug it."
    )

    @field_validator(
        "state_dir",
        "topics_file",
        "rules_dir",
        "warehouse_dir",
        "kafka_ssl_ca_file",
        "kafka_ssl_cert_file",
        "kafka_ssl_key_file",
    )
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Relative to the working directory at start, then fixed: a child process
        (the demo's worker) started elsewhere finds the same files."""
        return None if value is None else value.expanduser().absolute()

    @field_validator("input_max_bytes")
    @classmethod
    def _inputs_fit_in_a_message(cls, value: int, info: ValidationInfo) -> int:
        largest = info.data.get("max_message_bytes")
        if largest is not None and value > largest:
            raise ValueError(
                f"{value} is more than LEADFLOW_MAX_MESSAGE_BYTES ({largest}); e.g. 262144"
            )
        return value

    @model_validator(mode="after")
    def _kafka_settings_fit(self) -> Settings:
        problems = self.kafka.problems()
        isr = self.topic_min_insync_replicas
        if isr is not None and isr > self.topic_replication_factor:
            problems.append(
                f"LEADFLOW_TOPIC_MIN_INSYNC_REPLICAS ({isr}) is more than "
                f"LEADFLOW_TOPIC_REPLICATION_FACTOR ({self.topic_replication_factor}): no write "
                "could ever be acknowledged; e.g. 3 replicas, 2 in sync"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def kafka(self) -> KafkaConnection:
        """The brokers and how to reach them, for every Kafka client the project makes."""
        return KafkaConnection(
            bootstrap=self.kafka_bootstrap,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ssl_ca_file=self.kafka_ssl_ca_file,
            ssl_cert_file=self.kafka_ssl_cert_file,
            ssl_key_file=self.kafka_ssl_key_file,
            ssl_key_password=self.kafka_ssl_key_password,
            ssl_check_hostname=self.kafka_ssl_check_hostname,
        )

    def input_limit(self, spec: TopicSpec) -> int | None:
        """The size limit of messages on `spec`: only outside producers' topics have one
        (the worker's own events are measured when they are sent)."""
        return self.input_max_bytes if spec.external else None

    def oldest_input(self, spec: TopicSpec) -> datetime | None:
        """The earliest plausible `occurred_at` of a message on `spec`, now (outside
        producers' topics only; the worker's own events carry its own clock)."""
        return utcnow() - timedelta(days=self.input_max_age_days) if spec.external else None

    @property
    def embedded_warehouse_dir(self) -> Path:
        return self.warehouse_dir or self.state_dir / "warehouse"

    @property
    def web_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"


def load_settings(**overrides: object) -> Settings:
    """Read settings once at start; a bad value is a ConfigError, not a traceback."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"  LEADFLOW_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else f"  {err['msg'].removeprefix('Value error, ')}"  # settings that do not fit
            for err in exc.errors()
        ]
        raise ConfigError("Invalid settings (environment or .env):\n" + "\n".join(lines)) from exc
