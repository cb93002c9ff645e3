"""Everything the job writes: the history table, the current-segments table, the rejects table.

Each output is changed by exactly one Delta commit per run, retried on Delta's concurrent-modification
errors. A derived output records in its commit metadata the history version it reflects.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import delta.exceptions.captured  # noqa: F401  (maps Delta's JVM conflict errors to the Python classes below)
from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm.plan import RunPlan, WrittenSnapshot
from rfm.schema import HISTORY_CONSTRAINTS, PARTITION_COLUMN, REJECTS_SCHEMA, without_nullability

log = logging.getLogger(__name__)

Result = TypeVar("Result")
EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)

CONFLICTS: tuple[type[Exception], ...] = (
    DeltaConcurrentModificationException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
    ConcurrentAppendException,
    ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException,
    ConcurrentTransactionException,
)

# Non-Spark readers (delta-rs and what builds on it) must read every version we write.
READER_FRIENDLY = {"delta.enableDeletionVectors": "false"}
# CHECK constraints set as properties at creation: the table and its constraints arrive in one commit.
CONSTRAINT_PROPERTIES = {f"delta.constraints.{name}": condition for name, condition in HISTORY_CONSTRAINTS.items()}


class WriteConflictError(RuntimeError):
    """A commit kept losing to concurrent writers."""


class OutputDriftError(RuntimeError):
    """The existing history table was built with another schema or other definitions."""


def table_ref(path: str) -> str:
    """A path-based Delta table as a SQL identifier; backticks are doubled, so the path cannot end the quote."""
    return "delta.`" + path.replace("`", "``") + "`"


# While another process creates a table, its location briefly has a _delta_log without a first commit.
CREATION_RACES = ("DELTA_TABLE_NOT_FOUND", "DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION", "already exists")
ABANDONED_LOG_SECONDS = 120


def _is_conflict(exc: Exception) -> bool:
    if isinstance(exc, CONFLICTS):
        return True
    return isinstance(exc, AnalysisException) and any(marker in str(exc) for marker in CREATION_RACES)


def with_commit_retries(action: Callable[[], Result], what: str, retries: int) -> Result:
    """Run `action`, retrying on concurrent-modification conflicts (and creation races) with jittered backoff."""
    for attempt in range(retries + 1):
        try:
            return action()
        except Exception as exc:
            if not _is_conflict(exc):
                raise
            if attempt == retries:
                summary = str(exc).splitlines()[0][:300]
                raise WriteConflictError(
                    f"{what}: still conflicting with concurrent writers after {retries + 1} attempts ({summary})"
                ) from exc
            delay = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random())
            log.warning("%s: concurrent modification (attempt %d), retrying in %.1fs", what, attempt + 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def from_micros(micros: int) -> datetime:
    """An instant read from Spark as unix micros: collect() would give a naive local-time datetime."""
    return EPOCH_UTC + timedelta(microseconds=micros)


def latest_version(spark: SparkSession, path: str) -> int:
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])  # type: ignore[index]


def last_commit_metadata(spark: SparkSession, path: str) -> dict[str, Any]:
    """userMetadata of the newest commit, as a dict ({} when absent or not JSON)."""
    row = DeltaTable.forPath(spark, path).history(1).select("userMetadata").first()
    try:
        return dict(json.loads(row[0])) if row and row[0] else {}
    except ValueError:
        return {}


@dataclass(frozen=True)
class HistoryState:
    """What the history table holds before this run."""

    exists: bool
    version: int | None = None
    schema: T.StructType | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    written: Mapping[date, WrittenSnapshot] = field(default_factory=dict)


def read_history_state(spark: SparkSession, path: str) -> HistoryState:
    if not DeltaTable.isDeltaTable(spark, path):
        return HistoryState(exists=False)
    version = latest_version(spark, path)
    detail = DeltaTable.forPath(spark, path).detail().select("properties").first()
    history_df = spark.read.format("delta").option("versionAsOf", version).load(path)
    rows = (
        history_df.groupBy("snapshot_date")
        .agg(F.unix_micros(F.max("cutoff_ts")).alias("cutoff_micros"), F.bool_and("is_final").alias("is_final"))
        .collect()
    )
    written = {r["snapshot_date"]: WrittenSnapshot(from_micros(r["cutoff_micros"]), r["is_final"]) for r in rows}
    return HistoryState(True, version, history_df.schema, dict(detail[0] if detail else {}), written)


def drift(state: HistoryState, expected_schema: T.StructType, definitions: Mapping[str, str]) -> list[str]:
    """Differences between the existing table and what this run would write ([] when compatible)."""
    if not state.exists or state.schema is None:
        return []
    differences = []
    have, want = without_nullability(state.schema), without_nullability(expected_schema)
    if have != want:
        differences.append(f"schema is {_columns(have)}, this run writes {_columns(want)}")
    for key, value in definitions.items():
        stored = state.properties.get(key)
        if stored != value:
            differences.append(f"{key} is {stored!r} in the table, {value!r} in this configuration")
    return differences


def _columns(columns: list[tuple[str, str]]) -> str:
    return "(" + ", ".join(f"{name} {dtype}" for name, dtype in columns) + ")"


def clear_abandoned_creation(path: str) -> None:
    """Remove a local `_delta_log` that holds no commit and has not changed for minutes: what a process killed
    while creating the table leaves behind. It is no table, yet it makes every later creation fail. A fresh
    one may be another process's creation in progress and is left alone (the retry loop waits for it)."""
    log_dir = os.path.join(path.removeprefix("file:"), "_delta_log")
    if "://" in path or not os.path.isdir(log_dir):
        return
    names = os.listdir(log_dir)
    has_commit = any(n.endswith((".json", ".parquet", ".crc")) and not n.startswith(".") for n in names)
    idle = time.time() - os.path.getmtime(log_dir) > ABANDONED_LOG_SECONDS
    if not has_commit and idle:
        log.warning("removing %s: a table creation that never committed", log_dir)
        shutil.rmtree(log_dir, ignore_errors=True)


def _create_if_missing(
    spark: SparkSession, path: str, schema: T.StructType, properties: Mapping[str, str], *, partitioned: bool = False
) -> None:
    """CREATE TABLE IF NOT EXISTS at `path`, reader-friendly, after clearing an abandoned creation there."""
    clear_abandoned_creation(path)
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
    if partitioned:
        builder = builder.partitionedBy(PARTITION_COLUMN)
    for key, value in {**READER_FRIENDLY, **properties}.items():
        builder = builder.property(key, value)
    builder.execute()


def ensure_history_table(spark: SparkSession, path: str, schema: T.StructType, properties: Mapping[str, str]) -> None:
    """Create the table (with its constraints, in one commit) if missing; add any constraint an older table
    lacks. Safe to repeat, and safe when two first runs race (the loser's commit conflicts and is retried)."""
    _create_if_missing(spark, path, schema, {**CONSTRAINT_PROPERTIES, **properties}, partitioned=True)
    ensure_constraints(spark, path)


def ensure_constraints(spark: SparkSession, path: str) -> None:
    detail = DeltaTable.forPath(spark, path).detail().select("properties").first()
    existing = {k.removeprefix("delta.constraints.") for k in (detail[0] if detail else {})}
    for name, condition in HISTORY_CONSTRAINTS.items():
        if name.lower() not in existing:
            # Names and conditions are constants of this module; only the path comes from configuration.
            spark.sql(f"ALTER TABLE {table_ref(path)} ADD CONSTRAINT {name} CHECK ({condition})")


def write_history(
    history_df: DataFrame,
    path: str,
    plan: RunPlan,
    *,
    properties: Mapping[str, str],
    commit_metadata: Mapping[str, Any],
    rebuild: bool,
) -> None:
    """One commit replacing the plan's snapshots (or, for a full refresh, the whole table).

    `rebuild` (a full refresh over a table of another schema or definition) replaces table and metadata in
    one REPLACE TABLE AS SELECT commit; its constraints are then re-added.
    """
    metadata = json.dumps(commit_metadata, sort_keys=True, default=str)
    if rebuild:
        replacer = history_df.writeTo(table_ref(path)).using("delta").partitionedBy(F.col(PARTITION_COLUMN))
        for key, value in {**READER_FRIENDLY, **CONSTRAINT_PROPERTIES, **properties}.items():
            replacer = replacer.tableProperty(key, value)
        history_df.sparkSession.conf.set("spark.databricks.delta.commitInfo.userMetadata", metadata)
        try:
            replacer.createOrReplace()
        finally:
            history_df.sparkSession.conf.unset("spark.databricks.delta.commitInfo.userMetadata")
        ensure_constraints(history_df.sparkSession, path)
        return
    writer = history_df.write.format("delta").mode("overwrite").option("userMetadata", metadata)
    if not plan.replaces_whole_table:
        dates = ", ".join(f"DATE'{d.isoformat()}'" for d in plan.snapshot_dates)
        writer = writer.option("replaceWhere", f"{PARTITION_COLUMN} IN ({dates})")
    writer.save(path)


def refresh_current(spark: SparkSession, history_path: str, current_path: str, attempts: int = 5) -> int:
    """Replace the current-segments table with the newest snapshot of the newest history version.

    Two runs may refresh at once, each from the history version it saw; the one that commits last could leave
    an older one. So after committing, check the history did not move on; if it did, refresh again.
    """
    for _ in range(attempts):
        version = latest_version(spark, history_path)
        _write_current(spark, history_path, current_path, version)
        if latest_version(spark, history_path) == version:
            return version
    raise WriteConflictError(f"current-segments table: the history kept changing during {attempts} refreshes")


def refresh_current_with_retries(spark: SparkSession, history_path: str, current_path: str, retries: int) -> int:
    return with_commit_retries(
        lambda: refresh_current(spark, history_path, current_path), "current-segments commit", retries
    )


def _write_current(spark: SparkSession, history_path: str, current_path: str, version: int) -> None:
    history_df = spark.read.format("delta").option("versionAsOf", version).load(history_path)
    newest = history_df.agg(F.max(PARTITION_COLUMN)).first()[0]  # type: ignore[index]
    metadata = json.dumps({"history_version": version, "snapshot_date": str(newest)}, sort_keys=True)
    _create_if_missing(spark, current_path, history_df.schema, {})
    current_schema = spark.read.format("delta").load(current_path).schema
    writer = (
        history_df.where(F.col(PARTITION_COLUMN) == F.lit(newest))
        .write.format("delta")
        .mode("overwrite")
        .option("userMetadata", metadata)
    )
    if without_nullability(current_schema) != without_nullability(history_df.schema):
        writer = writer.option("overwriteSchema", "true")  # the history was rebuilt under a new schema
    writer.save(current_path)


def current_is_stale(spark: SparkSession, history_path: str, current_path: str) -> bool:
    if not DeltaTable.isDeltaTable(spark, history_path):
        return False
    if not DeltaTable.isDeltaTable(spark, current_path):
        return True
    reflected = last_commit_metadata(spark, current_path).get("history_version")
    return reflected != latest_version(spark, history_path)


def append_rejects(
    spark: SparkSession, rejects_df: DataFrame, path: str, commit_metadata: Mapping[str, Any], retries: int
) -> None:
    """Append this run's rejected rows (blind appends do not conflict; creating the table can race)."""
    with_commit_retries(lambda: _append_rejects(spark, rejects_df, path, commit_metadata), "rejects commit", retries)


def _append_rejects(spark: SparkSession, rejects_df: DataFrame, path: str, commit_metadata: Mapping[str, Any]) -> None:
    _create_if_missing(spark, path, REJECTS_SCHEMA, {})
    (
        rejects_df.select(*REJECTS_SCHEMA.fieldNames())
        .write.format("delta")
        .mode("append")
        .option("userMetadata", json.dumps(commit_metadata, sort_keys=True, default=str))
        .save(path)
    )
