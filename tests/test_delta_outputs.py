"""The Delta outputs as a user checks them: rows, partitions touched, versions, properties, re-runs."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm.config import JobConfig, parse_config
from rfm.delta_io import OutputDriftError
from rfm.forget import forget_users
from rfm.job import InputDataError, new_run_id, run_job
from rfm.plan import GuardError, RunRequest
from rfm.summary import RunSummary

SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("payment_id", T.StringType()),
        T.StructField("payment_date", T.TimestampType()),
        T.StructField("payment_amount", T.DecimalType(12, 2)),
    ]
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


PAYMENTS = [
    ("a", "p1", utc(2024, 1, 3, 8), Decimal("10.00")),
    ("b", "p2", utc(2024, 1, 20, 9), Decimal("30.00")),
    ("a", "p3", utc(2024, 2, 11, 10), Decimal("12.50")),
    ("c", "p4", utc(2024, 3, 2, 11), Decimal("7.25")),
    ("b", "p5", utc(2024, 3, 9, 12), Decimal("1.00")),
    ("d", "p6", utc(2024, 4, 2, 13), Decimal("99.99")),  # after the first as_of: not yet visible
]


def make_config(tmp_path: Path, **sections: Any) -> JobConfig:
    raw: dict[str, Any] = {
        "source": {"format": "delta", "path": str(tmp_path / "payments")},
        "output": {
            "history_path": str(tmp_path / "history"),
            "current_path": str(tmp_path / "current"),
            "rejects_path": str(tmp_path / "rejects"),
        },
    }
    raw.update(sections)
    return parse_config(raw)


def write_payments(spark: SparkSession, tmp_path: Path, rows: list[tuple], mode: str = "overwrite") -> None:
    spark.createDataFrame(rows, SCHEMA).write.format("delta").mode(mode).save(str(tmp_path / "payments"))


def run(spark: SparkSession, config: JobConfig, as_of: datetime, **request: Any) -> RunSummary:
    summary = RunSummary(run_id=new_run_id())
    run_job(spark, config, RunRequest(as_of, **request), summary)
    return summary


def table(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def version(spark: SparkSession, path: str) -> int:
    return int(DeltaTable.forPath(spark, path).history(1).first()["version"])  # type: ignore[index]


def touched_partitions(path: str, commit_version: int) -> set[str]:
    """snapshot_date partitions of every add and remove action in one commit of the Delta log."""
    log_file = Path(path) / "_delta_log" / f"{commit_version:020d}.json"
    touched = set()
    for line in log_file.read_text().splitlines():
        action = json.loads(line)
        for kind in ("add", "remove"):
            if kind in action:
                touched.add(action[kind]["partitionValues"]["snapshot_date"])
    return touched


def test_first_run_creates_a_reader_friendly_constrained_partitioned_table(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, PAYMENTS)
    config = make_config(tmp_path)
    summary = run(spark, config, utc(2024, 3, 15))
    history = config.output.history_path
    detail = DeltaTable.forPath(spark, history).detail().first()
    assert detail is not None
    assert detail["partitionColumns"] == ["snapshot_date"]
    properties = detail["properties"]
    assert properties["delta.enableDeletionVectors"] == "false"
    assert properties["rfm.grain"] == "month" and properties["rfm.timezone"] == "UTC"
    assert properties["rfm.money_scale"] == "2"
    assert properties["delta.constraints.recency_score_1_to_5"] == "recency_score BETWEEN 1 AND 5"
    assert properties["delta.constraints.monetary_percentile_0_to_1"] == "monetary_percentile BETWEEN 0 AND 1"
    assert all(not field.nullable for field in table(spark, history).schema.fields)
    assert summary.snapshots_written == ["2024-01-31", "2024-02-29", "2024-03-31"]
    assert summary.source_version == 0
    metadata = json.loads(DeltaTable.forPath(spark, history).history(1).first()["userMetadata"])  # type: ignore[index]
    assert metadata["as_of"] == "2024-03-15T00:00:00+00:00"
    assert metadata["mode"] == "full" and metadata["source_version"] == 0 and metadata["run_id"] == summary.run_id
    assert metadata["project_version"] == "0.1.0"
    current = table(spark, config.output.current_path)
    assert {r["snapshot_date"] for r in current.collect()} == {date(2024, 3, 31)}
    assert_df_equality(current, table(spark, history).where("snapshot_date = '2024-03-31'"), ignore_row_order=True)


def test_a_constraint_violation_is_refused_by_the_table(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, PAYMENTS)
    config = make_config(tmp_path)
    run(spark, config, utc(2024, 3, 15))
    bad = table(spark, config.output.history_path).limit(1).withColumn("recency_score", F.lit(6))
    with pytest.raises(Exception, match="recency_score_1_to_5"):
        bad.write.format("delta").mode("append").save(config.output.history_path)


def test_scheduled_reruns_touch_only_the_snapshots_they_recompute(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, PAYMENTS)
    config = make_config(tmp_path)
    history = config.output.history_path
    run(spark, config, utc(2024, 3, 15))
    before = table(spark, history).collect()

    again = run(spark, config, utc(2024, 3, 15))  # same as_of, same input
    assert again.mode == "scheduled" and again.snapshots_written == ["2024-03-31"]
    assert touched_partitions(history, version(spark, history)) == {"2024-03-31"}
    assert sorted(table(spark, history).collect()) == sorted(before)

    month_end = run(spark, config, utc(2024, 4, 5))  # March closes, April opens
    assert month_end.snapshots_written == ["2024-03-31", "2024-04-30"]
    assert touched_partitions(history, version(spark, history)) == {"2024-03-31", "2024-04-30"}
    rows = table(spark, history)
    march = {
        (r["user_id"], r["is_final"], r["cutoff_ts"]) for r in rows.where("snapshot_date = '2024-03-31'").collect()
    }
    assert march == {(u, True, datetime(2024, 4, 1)) for u in "abc"}
    assert sorted(rows.where("snapshot_date < '2024-03-31'").collect()) == sorted(
        r for r in before if r["snapshot_date"] < date(2024, 3, 31)
    )


def test_going_backwards_is_refused_and_a_final_snapshot_is_never_reopened(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, PAYMENTS)
    config = make_config(tmp_path)
    run(spark, config, utc(2024, 4, 5))
    version_before = version(spark, config.output.history_path)
    with pytest.raises(GuardError, match="earlier than the newest cutoff"):
        run(spark, config, utc(2024, 4, 1))
    with pytest.raises(GuardError, match="2024-03-31 is final"):
        run(spark, config, utc(2024, 3, 20), date_from=date(2024, 3, 1))
    assert version(spark, config.output.history_path) == version_before


def test_a_changed_definition_is_refused_until_a_full_refresh(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, PAYMENTS)
    run(spark, make_config(tmp_path), utc(2024, 3, 15))
    weekly = make_config(tmp_path, periods={"grain": "week", "timezone": "Europe/Paris"})
    with pytest.raises(OutputDriftError, match=r"rfm.grain is 'month' in the table, 'week' in this configuration"):
        run(spark, weekly, utc(2024, 3, 15))
    rebuilt = run(spark, weekly, utc(2024, 3, 15), full_refresh=True)
    history = weekly.output.history_path
    properties = DeltaTable.forPath(spark, history).detail().first()["properties"]  # type: ignore[index]
    assert properties["rfm.grain"] == "week" and properties["rfm.timezone"] == "Europe/Paris"
    assert "delta.constraints.frequency_score_1_to_5" in properties
    dates = sorted({r["snapshot_date"] for r in table(spark, history).collect()})
    assert dates[0] == date(2024, 1, 7) and dates[-1] == date(2024, 3, 17)  # Sundays: no month-end survives
    assert rebuilt.snapshots_written[-1] == "2024-03-17"


def test_too_many_rejects_fail_before_writing_but_rejects_are_kept(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, PAYMENTS)
    config = make_config(tmp_path)
    run(spark, config, utc(2024, 3, 15))
    version_before = version(spark, config.output.history_path)
    write_payments(spark, tmp_path, [("e", None, utc(2024, 3, 10), Decimal("1.00"))], mode="append")
    with pytest.raises(InputDataError, match=r"1 of 7 rows rejected"):
        run(spark, config, utc(2024, 3, 16))
    assert version(spark, config.output.history_path) == version_before
    rejects = table(spark, config.output.rejects_path).collect()
    assert [(r["user_id"], r["payment_id"], r["reason"]) for r in rejects] == [("e", None, "null_payment_id")]


def test_empty_input_fails_and_leaves_the_output_alone(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, PAYMENTS)
    config = make_config(tmp_path)
    run(spark, config, utc(2024, 3, 15))
    version_before = version(spark, config.output.history_path)
    write_payments(spark, tmp_path, [])
    with pytest.raises(InputDataError, match="the source has no rows"):
        run(spark, config, utc(2024, 3, 16))
    assert version(spark, config.output.history_path) == version_before


def test_a_missing_current_table_is_rebuilt_by_the_next_run(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, PAYMENTS)
    config = make_config(tmp_path)
    run(spark, config, utc(2024, 3, 15))
    shutil.rmtree(config.output.current_path)
    summary = run(spark, config, utc(2024, 3, 15))
    assert summary.current_history_version == version(spark, config.output.history_path)
    assert {r["user_id"] for r in table(spark, config.output.current_path).collect()} == {"a", "b", "c"}


def test_forgetting_users_removes_them_from_every_table(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, [*PAYMENTS, ("b", None, utc(2024, 3, 1), Decimal("1.00"))])
    config = make_config(tmp_path, quality={"max_reject_ratio": 0.5})
    run(spark, config, utc(2024, 3, 15))
    deleted = forget_users(spark, config, ["b"])
    assert deleted == {"history": 3, "rejects": 1, "current": 1}
    out = config.output
    for path in (out.history_path, out.current_path, out.rejects_path):
        assert table(spark, path).where("user_id = 'b'").count() == 0
    assert {r["user_id"] for r in table(spark, out.current_path).collect()} == {"a", "c"}


def test_a_dry_run_plans_but_writes_nothing(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, [*PAYMENTS, ("e", None, utc(2024, 3, 1), Decimal("1.00"))])
    config = make_config(tmp_path, quality={"max_reject_ratio": 0.5})
    summary = RunSummary(run_id=new_run_id())
    plan = run_job(spark, config, RunRequest(utc(2024, 3, 15)), summary, dry_run=True)
    assert plan.describe()[1:] == [
        "  2024-01-31  cutoff_ts=2024-02-01T00:00:00+00:00  final",
        "  2024-02-29  cutoff_ts=2024-03-01T00:00:00+00:00  final",
        "  2024-03-31  cutoff_ts=2024-03-15T00:00:00+00:00  open",
    ]
    assert summary.rejects_by_reason == {"null_payment_id": 1}
    out = config.output
    assert not any(Path(p).exists() for p in (out.history_path, out.current_path, out.rejects_path))


def test_an_abandoned_table_creation_does_not_block_later_runs(spark: SparkSession, tmp_path: Path) -> None:
    """A process killed while creating a table leaves an empty _delta_log; after a while it is cleared."""
    write_payments(spark, tmp_path, PAYMENTS)
    config = make_config(tmp_path)
    abandoned = Path(config.output.history_path) / "_delta_log"
    abandoned.mkdir(parents=True)
    an_hour_ago = time.time() - 3600
    os.utime(abandoned, (an_hour_ago, an_hour_ago))
    summary = run(spark, config, utc(2024, 3, 15))
    assert summary.snapshots_written == ["2024-01-31", "2024-02-29", "2024-03-31"]
    assert version(spark, config.output.history_path) == 1  # created (0), then written (1)


def test_a_changed_output_schema_is_refused_until_a_full_refresh(spark: SparkSession, tmp_path: Path) -> None:
    write_payments(spark, tmp_path, PAYMENTS)
    config = make_config(tmp_path)
    run(spark, config, utc(2024, 3, 15))
    integer_ids = T.StructType([T.StructField("user_id", T.LongType()), *SCHEMA.fields[1:]])
    rows = [(i, *row[1:]) for i, row in enumerate(PAYMENTS)]
    spark.createDataFrame(rows, integer_ids).write.format("delta").mode("overwrite").option(
        "overwriteSchema", "true"
    ).save(str(tmp_path / "payments"))
    with pytest.raises(OutputDriftError, match=r"schema is \(snapshot_date date, .*user_id string.*this run writes"):
        run(spark, config, utc(2024, 3, 16))
    run(spark, config, utc(2024, 3, 16), full_refresh=True)
    for path in (config.output.history_path, config.output.current_path):
        assert table(spark, path).schema["user_id"].dataType == T.LongType()
    assert {r["user_id"] for r in table(spark, config.output.current_path).collect()} == {0, 1, 2, 3, 4}
