"""One run of the job, in order: config -> source schema -> history state -> validation -> plan -> compute
-> write history -> refresh current. Spark and the config come in; nothing here parses arguments."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm import delta_io
from rfm.config import JobConfig
from rfm.faults import crash_point
from rfm.pipeline import build_history
from rfm.plan import RunPlan, RunRequest, build_plan, refuse_unfinalising
from rfm.quality import DUPLICATE, VALID, filter_rejected, filter_valid, with_outcome
from rfm.schema import history_schema
from rfm.source import SourceInfo, conform_payments, inspect_source, read_source, source_version
from rfm.summary import RunSummary

log = logging.getLogger(__name__)


class InputDataError(ValueError):
    """The input cannot be used: empty, or more rejected rows than the configured ratio allows."""


def new_run_id() -> str:
    return uuid.uuid4().hex


def project_version() -> str:
    try:
        return version("rfm-history")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ValidationCounts:
    input_rows: int
    valid_rows: int
    duplicates: int
    rejects_by_reason: dict[str, int]

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejects_by_reason.values())


def count_outcomes(outcome_df: DataFrame) -> ValidationCounts:
    counts = {r["outcome"]: int(r["count"]) for r in outcome_df.groupBy("outcome").count().collect()}
    valid, duplicates = counts.pop(VALID, 0), counts.pop(DUPLICATE, 0)
    rejected = dict(sorted(counts.items()))
    return ValidationCounts(valid + duplicates + sum(rejected.values()), valid, duplicates, rejected)


@dataclass(frozen=True)
class _Target:
    """What the inspect phase learned: the source as read, and what this run's output must look like."""

    raw_df: DataFrame
    info: SourceInfo
    expected_schema: T.StructType
    properties: dict[str, str]
    state: delta_io.HistoryState
    rebuild: bool  # a full refresh over a table built with another schema or definition


def run_job(
    spark: SparkSession,
    config: JobConfig,
    request: RunRequest,
    summary: RunSummary,
    *,
    dry_run: bool = False,
) -> RunPlan:
    """Run the job; fills `summary` as it goes, so a failure still reports what was done."""
    out = config.output
    summary.as_of = request.as_of.isoformat()
    summary.tables = {"history": out.history_path, "current": out.current_path, "rejects": out.rejects_path}
    started_at = datetime.now(UTC)
    with summary.phase("inspect"):
        target = _inspect(spark, config, request, heal=not dry_run)
        summary.source_version = source_version(spark, config.source)
    conformed_df = conform_payments(target.raw_df, config.source, target.info, config.periods.timezone)
    outcome_df = with_outcome(conformed_df, config.quality.allow_negative_amounts).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with summary.phase("validate"):
            valid_df = _validate(spark, config, request, summary, outcome_df, started_at, dry_run=dry_run)
        with summary.phase("plan"):
            plan = _plan(config, request, target.state, valid_df)
            summary.mode = plan.mode.value
        if dry_run:
            return plan
        with summary.phase("write_history"):
            _write_history(spark, config, plan, target, valid_df, summary)
        with summary.phase("write_current"):
            summary.current_history_version = _refresh_current(spark, config)
            crash_point("after_current_commit")
            _describe_current(spark, out.current_path, summary)
        return plan
    finally:
        outcome_df.unpersist()


def _inspect(spark: SparkSession, config: JobConfig, request: RunRequest, *, heal: bool) -> _Target:
    """Source schema and history state, from metadata; refuses drift; heals a stale current table."""
    out = config.output
    raw_df = read_source(spark, config.source)
    info = inspect_source(raw_df, config.source, config.scoring.money_scale)
    expected_schema = history_schema(info.user_id_type, info.money_scale)
    properties = {**config.definitions(), "rfm.money_scale": str(info.money_scale)}
    state = delta_io.read_history_state(spark, out.history_path)
    differences = delta_io.drift(state, expected_schema, properties)
    if differences and not request.full_refresh:
        raise delta_io.OutputDriftError(
            f"history table {out.history_path} was built differently: {'; '.join(differences)}. "
            "Run with --full-refresh to rebuild it under this configuration."
        )
    if heal and delta_io.current_is_stale(spark, out.history_path, out.current_path):
        log.info("current-segments table is behind the history table; refreshing it first")
        _refresh_current(spark, config)
    return _Target(raw_df, info, expected_schema, properties, state, rebuild=bool(differences) and state.exists)


def _validate(
    spark: SparkSession,
    config: JobConfig,
    request: RunRequest,
    summary: RunSummary,
    outcome_df: DataFrame,
    started_at: datetime,
    *,
    dry_run: bool,
) -> DataFrame:
    """Count outcomes, append rejects (even when the run then fails), enforce the reject ratio."""
    out = config.output
    counts = count_outcomes(outcome_df)
    summary.input_rows, summary.valid_rows = counts.input_rows, counts.valid_rows
    summary.duplicates_collapsed, summary.rejected_rows = counts.duplicates, counts.rejected_rows
    summary.rejects_by_reason = counts.rejects_by_reason
    if counts.input_rows == 0:
        raise InputDataError(f"the source has no rows ({config.source.path or config.source.table})")
    if counts.rejected_rows and not dry_run:
        run_columns = {"run_id": summary.run_id, "as_of": request.as_of, "run_started_at": started_at}
        rejects_df = filter_rejected(outcome_df).select(
            "*", *[F.lit(value).alias(name) for name, value in run_columns.items()]
        )
        delta_io.append_rejects(spark, rejects_df, out.rejects_path, {"run_id": summary.run_id}, out.commit_retries)
    ratio = counts.rejected_rows / counts.input_rows
    if ratio > config.quality.max_reject_ratio:
        raise InputDataError(
            f"{counts.rejected_rows} of {counts.input_rows} rows rejected ({ratio:.2%}), more than "
            f"quality.max_reject_ratio {config.quality.max_reject_ratio:.2%}: {counts.rejects_by_reason}; "
            f"see {out.rejects_path}"
        )
    crash_point("after_validation")
    return filter_valid(outcome_df)


def _plan(config: JobConfig, request: RunRequest, state: delta_io.HistoryState, valid_df: DataFrame) -> RunPlan:
    earliest = None
    if request.full_refresh or not state.written:  # only a full run starts from the earliest payment
        visible_df = valid_df.where(F.col("payment_date") < F.lit(request.as_of))
        micros = visible_df.agg(F.unix_micros(F.min("payment_date"))).first()[0]  # type: ignore[index]
        earliest = None if micros is None else delta_io.from_micros(micros)
    plan = build_plan(
        request,
        grain=config.periods.grain,
        timezone=config.periods.timezone,
        periods_start=config.periods.start,
        earliest_payment=earliest,
        written=state.written,
    )
    for line in plan.describe():
        log.info("plan: %s", line)
    return plan


def _write_history(
    spark: SparkSession, config: JobConfig, plan: RunPlan, target: _Target, valid_df: DataFrame, summary: RunSummary
) -> None:
    out = config.output
    history_df = build_history(
        valid_df,
        plan,
        grain=config.periods.grain,
        timezone=config.periods.timezone,
        money_scale=target.info.money_scale,
        thresholds=config.scoring.thresholds,
        segment_by_cell=config.scoring.segment_by_cell(),
    )
    metadata = {
        "run_id": summary.run_id,
        "as_of": plan.as_of.isoformat(),
        "mode": plan.mode.value,
        "project_version": project_version(),
        "source_version": summary.source_version,
        "snapshots": [d.isoformat() for d in plan.snapshot_dates],
    }

    def commit() -> None:
        if not target.rebuild:
            delta_io.ensure_history_table(spark, out.history_path, target.expected_schema, target.properties)
            # Another run may have finalised one of our snapshots since we planned.
            refuse_unfinalising(plan.snapshots, delta_io.read_history_state(spark, out.history_path).written)
        crash_point("before_history_commit")
        delta_io.write_history(
            history_df,
            out.history_path,
            plan,
            properties=target.properties,
            commit_metadata=metadata,
            rebuild=target.rebuild,
        )

    delta_io.with_commit_retries(commit, "history commit", out.commit_retries)
    summary.snapshots_written = [d.isoformat() for d in plan.snapshot_dates]
    summary.history_version, summary.rows_written = _our_commit(spark, out.history_path, summary.run_id)
    crash_point("after_history_commit")


def _describe_current(spark: SparkSession, current_path: str, summary: RunSummary) -> None:
    by_segment = spark.read.format("delta").load(current_path).groupBy("snapshot_date", "rfm_segment").count().collect()
    summary.newest_snapshot = str(by_segment[0]["snapshot_date"]) if by_segment else None
    summary.users_by_segment = {r["rfm_segment"]: int(r["count"]) for r in by_segment}


def _refresh_current(spark: SparkSession, config: JobConfig) -> int:
    out = config.output
    return delta_io.refresh_current_with_retries(spark, out.history_path, out.current_path, out.commit_retries)


def _our_commit(spark: SparkSession, path: str, run_id: str) -> tuple[int | None, int | None]:
    """Version and output row count of this run's history commit (found by run_id among recent commits)."""
    from delta.tables import DeltaTable

    recent = DeltaTable.forPath(spark, path).history(20).select("version", "userMetadata", "operationMetrics")
    for row in recent.collect():
        if row["userMetadata"] and run_id in row["userMetadata"]:
            rows = (row["operationMetrics"] or {}).get("numOutputRows")
            return int(row["version"]), int(rows) if rows is not None else None
    return None, None
