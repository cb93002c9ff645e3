"""End-to-end tests: the job's Delta output, every column, against the reference implementation.

Each test writes a payments source generated here by a seeded random generator (data the job has never seen),
runs the job in-process on the shared SparkSession, and compares the history table with
`reference_rfm.reference_history` computed over the same payments, cleaned by SPEC §2.1 rules applied in plain
Python. Doubles are produced by the same formulas on both sides, so every column is compared exactly.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import deltalake
import pandas as pd
import pyarrow as pa
import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from reference_rfm import OUTPUT_COLUMNS, reference_history

from rfm.config import JobConfig, parse_config
from rfm.job import InputDataError, new_run_id, run_job
from rfm.periods import parse_as_of
from rfm.plan import RunRequest
from rfm.summary import RunSummary

SOURCE_COLUMNS = {"user_id": "customer", "payment_id": "txn", "payment_date": "paid_at", "payment_amount": "amount"}
TIMESTAMP_COLUMNS = ("cutoff_ts", "max_payment_date")
TIE_AMOUNTS = ("0.00", "9.99", "10.00", "25.00", "49.90", "100.00")


# --------------------------------------------------------------------------------------------------------
# Seeded payments generator
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payment:
    """One source row. Any field may be None (dirty input); amount is Decimal (DECIMAL source) or float."""

    user_id: str | int | None
    payment_id: str | int | None
    payment_date: datetime | None  # timezone-aware
    amount: Decimal | float | None


def period_starts(first: date, last: date, grain: str) -> list[date]:
    """Local first days of the periods starting in [first, last]."""
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    is_start = {
        "day": lambda d: True,
        "week": lambda d: d.isoweekday() == 1,
        "month": lambda d: d.day == 1,
        "quarter": lambda d: d.day == 1 and d.month in (1, 4, 7, 10),
    }[grain]
    return [d for d in days if is_start(d)]


def local_midnight(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=ZoneInfo(timezone))


def generate_payments(
    seed: int,
    *,
    first: date,
    last: date,
    grain: str,
    timezone: str,
    n_users: int = 300,
    n_payments: int = 2500,
    integer_ids: bool = False,
    float_amounts: bool = False,
    special_instants: Sequence[datetime] = (),
) -> list[Payment]:
    """Payments of `n_users` users between local days `first` and `last`.

    Activity is skewed (a few heavy buyers, many one-off ones), about a tenth of the payments fall exactly on
    a local-midnight period boundary and a twentieth on some other local midnight (ties in recency), half of
    the amounts come from a short list (ties in monetary), and `special_instants` each get one payment.
    """
    rng = random.Random(seed)
    tz = ZoneInfo(timezone)
    users: list[str | int] = (
        [7_000_000_000 + 37 * i for i in range(n_users)] if integer_ids else [f"c{i:04d}" for i in range(n_users)]
    )
    weights = [rng.paretovariate(1.3) for _ in users]
    span_start = local_midnight(first, timezone).astimezone(UTC)
    span_us = (local_midnight(last + timedelta(days=1), timezone).astimezone(UTC) - span_start) // timedelta(
        microseconds=1
    )
    boundaries = [local_midnight(d, timezone) for d in period_starts(first, last, grain)]
    any_midnights = [local_midnight(d, timezone) for d in period_starts(first, last, "day")]

    instants: list[datetime] = list(special_instants)
    while len(instants) < n_payments:
        draw = rng.random()
        if draw < 0.10:
            instants.append(rng.choice(boundaries))
        elif draw < 0.15:
            instants.append(rng.choice(any_midnights))
        else:
            instant = span_start + timedelta(microseconds=rng.randrange(span_us))
            # Half of them on whole seconds, as most systems record them.
            instants.append(instant.replace(microsecond=0) if rng.random() < 0.5 else instant)

    payments = []
    for index, instant in enumerate(instants):
        user = rng.choices(users, weights)[0]
        tie = rng.random() < 0.5
        amount = Decimal(rng.choice(TIE_AMOUNTS)) if tie else Decimal(rng.randint(1, 99_999)) / 100
        payment_id: str | int = 900_000 + index * 7 if integer_ids else f"t{index:06d}"
        payments.append(Payment(user, payment_id, instant.astimezone(tz), float(amount) if float_amounts else amount))
    rng.shuffle(payments)
    return payments


# --------------------------------------------------------------------------------------------------------
# Sources, job runs, reference
# --------------------------------------------------------------------------------------------------------


def source_schema(*, integer_ids: bool, float_amounts: bool) -> T.StructType:
    id_type = T.LongType() if integer_ids else T.StringType()
    return T.StructType(
        [
            T.StructField("customer", id_type, True),
            T.StructField("txn", id_type, True),
            T.StructField("paid_at", T.TimestampType(), True),
            T.StructField("amount", T.DoubleType() if float_amounts else T.DecimalType(12, 2), True),
            T.StructField("channel", T.StringType(), True),  # an extra column: ignored by the job
        ]
    )


def write_source(
    spark: SparkSession,
    path: Path,
    payments: Iterable[Payment],
    *,
    fmt: str = "parquet",
    mode: str = "overwrite",
    integer_ids: bool = False,
    float_amounts: bool = False,
) -> None:
    rows = [(p.user_id, p.payment_id, p.payment_date, p.amount, "web") for p in payments]
    schema = source_schema(integer_ids=integer_ids, float_amounts=float_amounts)
    spark.createDataFrame(rows, schema).write.format(fmt).mode(mode).save(str(path))


def job_config(
    src: Path,
    out: Path,
    *,
    grain: str,
    timezone: str,
    fmt: str = "parquet",
    start: str | None = None,
    quality: dict[str, Any] | None = None,
) -> JobConfig:
    """A config for the generated source; `quality` defaults to a tolerant reject ratio (0.5)."""
    periods: dict[str, Any] = {"grain": grain, "timezone": timezone}
    if start is not None:
        periods["start"] = start
    return parse_config(
        {
            "source": {"format": fmt, "path": str(src), "columns": SOURCE_COLUMNS},
            "periods": periods,
            "output": {
                "history_path": str(out / "history"),
                "current_path": str(out / "current"),
                "rejects_path": str(out / "rejects"),
            },
            "quality": {"max_reject_ratio": 0.5} if quality is None else quality,
        }
    )


def run(spark: SparkSession, config: JobConfig, as_of: str, **request: Any) -> RunSummary:
    summary = RunSummary(run_id=new_run_id())
    run_job(spark, config, RunRequest(as_of=parse_as_of(as_of, config.periods.timezone), **request), summary)
    return summary


@dataclass(frozen=True)
class Expected:
    """The reference history, collected once: column types, and rows sorted, timestamps as epoch micros."""

    types: list[T.DataType]
    rows: list[tuple]

    def dates(self) -> list[str]:
        return sorted({str(row[0]) for row in self.rows})

    def snapshot(self, day: str) -> list[tuple]:
        return [row for row in self.rows if str(row[0]) == day]


def reference(
    spark: SparkSession,
    payments: Iterable[Payment],
    *,
    grain: str,
    timezone: str,
    as_of: datetime,
    integer_ids: bool = False,
    float_amounts: bool = False,
    periods_start: date | None = None,
) -> Expected:
    """The reference history over clean payments. Float amounts are cast to DECIMAL(38, 6) (SPEC §4) here in
    Python, from the double's shortest decimal representation, rounding half up."""
    if float_amounts:
        amount_type: T.DataType = T.DecimalType(38, 6)
        rows = [
            (p.user_id, p.payment_id, p.payment_date, Decimal(repr(p.amount)).quantize(Decimal("1e-6"), ROUND_HALF_UP))
            for p in payments
        ]
    else:
        amount_type = T.DecimalType(12, 2)
        rows = [(p.user_id, p.payment_id, p.payment_date, p.amount) for p in payments]
    id_type = T.LongType() if integer_ids else T.StringType()
    schema = T.StructType(
        [
            T.StructField("user_id", id_type, False),
            T.StructField("payment_id", id_type, False),
            T.StructField("payment_date", T.TimestampType(), False),
            T.StructField("payment_amount", amount_type, False),
        ]
    )
    history_df = reference_history(
        spark,
        spark.createDataFrame(rows, schema),
        grain=grain,
        timezone=timezone,
        as_of=as_of,
        periods_start=periods_start,
    )
    return Expected([f.dataType for f in history_df.schema.fields], spark_rows(history_df))


def read_delta(spark: SparkSession, path: Path, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(str(path))


def delta_version(spark: SparkSession, path: Path) -> int:
    return int(DeltaTable.forPath(spark, str(path)).history(1).select("version").first()[0])


def micros(instant: datetime) -> int:
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# --------------------------------------------------------------------------------------------------------
# Comparisons: every column, exact values (doubles too)
# --------------------------------------------------------------------------------------------------------


def spark_rows(df: DataFrame) -> list[tuple]:
    """Rows as plain Python tuples, timestamps as epoch microseconds (no dependence on any local time zone)."""
    columns = [F.unix_micros(c).alias(c) if c in TIMESTAMP_COLUMNS else F.col(c) for c in OUTPUT_COLUMNS]
    return sorted(tuple(row) for row in df.select(*columns).collect())


def pandas_rows(pdf: pd.DataFrame) -> list[tuple]:
    epoch = pd.Timestamp(0, tz="UTC")
    columns = []
    for name in OUTPUT_COLUMNS:
        series = pdf[name]
        if name in TIMESTAMP_COLUMNS:
            columns.append(((series - epoch) // pd.Timedelta(microseconds=1)).tolist())
        elif name == "snapshot_date":
            columns.append([pd.Timestamp(d).date() for d in series])
        else:
            columns.append(series.tolist())
    return sorted(zip(*columns, strict=True))


def assert_same_rows(actual: list[tuple], expected: list[tuple], what: str) -> None:
    if actual == expected:
        return
    missing, unexpected = Counter(expected) - Counter(actual), Counter(actual) - Counter(expected)
    show = "\n".join
    raise AssertionError(
        f"{what} differs from the reference ({len(actual)} rows, {len(expected)} expected): "
        f"{sum(missing.values())} expected rows missing, {sum(unexpected.values())} unexpected "
        f"(columns {OUTPUT_COLUMNS}, timestamps as epoch micros)\n"
        f"  missing:\n{show(f'    {r}' for r in sorted(missing)[:6])}\n"
        f"  unexpected:\n{show(f'    {r}' for r in sorted(unexpected)[:6])}"
    )


def assert_history(
    spark: SparkSession, path: Path, expected: Expected, *, rows: list[tuple] | None = None, version: int | None = None
) -> DataFrame:
    """The Delta table at `path` read by Spark: SPEC column order, the reference's types, the same rows."""
    df = read_delta(spark, path, version)
    assert df.columns == OUTPUT_COLUMNS
    assert [f.dataType for f in df.schema.fields] == expected.types
    assert_same_rows(spark_rows(df), expected.rows if rows is None else rows, f"{path.name} (Spark)")
    return df


def assert_deltalake_reads(path: Path, expected: Expected) -> pd.DataFrame:
    """The table as a non-Spark reader sees it (delta-rs via `deltalake`, into pandas) equals the reference."""
    pdf = deltalake.DeltaTable(str(path)).to_pandas()
    assert sorted(pdf.columns) == sorted(OUTPUT_COLUMNS)
    for name in TIMESTAMP_COLUMNS:  # TIMESTAMP is an instant: delta-rs gives tz-aware UTC (NTZ would be naive)
        assert isinstance(pdf[name].dtype, pd.DatetimeTZDtype), (name, pdf[name].dtype)
        assert str(pdf[name].dtype.tz) == "UTC"
    assert_same_rows(pandas_rows(pdf), expected.rows, f"{path.name} (deltalake)")
    return pdf


def partition_files(path: Path, version: int) -> dict[str, set[str]]:
    """snapshot_date -> data file paths, at one table version (read from the Delta log by delta-rs)."""
    actions = pa.table(deltalake.DeltaTable(str(path), version=version).get_add_actions(flatten=True))
    files: dict[str, set[str]] = {}
    for file_path, snapshot in zip(
        actions.column("path").to_pylist(), actions.column("partition.snapshot_date").to_pylist(), strict=True
    ):
        files.setdefault(str(snapshot), set()).add(file_path)
    return files


# --------------------------------------------------------------------------------------------------------
# 1. Monthly, UTC
# --------------------------------------------------------------------------------------------------------

SPEC_TYPES = [
    ("snapshot_date", T.DateType()),
    ("cutoff_ts", T.TimestampType()),
    ("is_final", T.BooleanType()),
    ("user_id", T.StringType()),
    ("max_payment_date", T.TimestampType()),
    ("recency_days", T.DoubleType()),
    ("frequency", T.LongType()),
    ("monetary", T.DecimalType(38, 2)),
    ("recency_percentile", T.DoubleType()),
    ("frequency_percentile", T.DoubleType()),
    ("monetary_percentile", T.DoubleType()),
    ("recency_score", T.IntegerType()),
    ("frequency_score", T.IntegerType()),
    ("monetary_score", T.IntegerType()),
    ("rfm_segment", T.StringType()),
]


def test_monthly_utc_matches_reference_schema_partitioning_and_current(spark: SparkSession, tmp_path: Path) -> None:
    as_of = datetime(2024, 3, 13, 14, 30, tzinfo=UTC)
    payments = generate_payments(
        101,
        first=date(2023, 1, 1),
        last=date(2024, 3, 31),  # some payments after as_of: not yet visible
        grain="month",
        timezone="UTC",
        special_instants=[as_of, as_of - timedelta(microseconds=1), datetime(2024, 3, 1, tzinfo=UTC)],
    )
    write_source(spark, tmp_path / "src", payments)
    config = job_config(tmp_path / "src", tmp_path, grain="month", timezone="UTC")

    summary = run(spark, config, "2024-03-13T14:30:00")

    expected = reference(spark, payments, grain="month", timezone="UTC", as_of=as_of)
    history_df = assert_history(spark, tmp_path / "history", expected)
    assert_deltalake_reads(tmp_path / "history", expected)
    # A full first run: every month from the first payment's (January 2023) to the open one (March 2024).
    assert summary.snapshots_written == expected.dates()
    assert len(summary.snapshots_written) == 15
    assert summary.snapshots_written[0] == "2023-01-31" and summary.snapshots_written[-1] == "2024-03-31"
    assert (summary.input_rows, summary.valid_rows, summary.rejected_rows) == (2500, 2500, 0)
    assert summary.rows_written == len(expected.rows)
    segment = OUTPUT_COLUMNS.index("rfm_segment")
    assert summary.newest_snapshot == "2024-03-31"
    assert summary.users_by_segment == dict(Counter(row[segment] for row in expected.snapshot("2024-03-31")))

    # SPEC §5.1 types as Spark sees them (TIMESTAMP, never TIMESTAMP_NTZ), and the partitioning.
    assert [(f.name, f.dataType) for f in history_df.schema.fields] == SPEC_TYPES
    detail = DeltaTable.forPath(spark, str(tmp_path / "history")).detail().first()
    assert detail["partitionColumns"] == ["snapshot_date"]
    assert deltalake.DeltaTable(str(tmp_path / "history")).metadata().partition_columns == ["snapshot_date"]

    # The current-segments table: exactly the newest snapshot's rows, same columns and types.
    assert_history(spark, tmp_path / "current", expected, rows=expected.snapshot("2024-03-31"))


# --------------------------------------------------------------------------------------------------------
# 2. Weekly, America/New_York, across both DST changes
# --------------------------------------------------------------------------------------------------------


def test_weekly_new_york_across_dst_changes(spark: SparkSession, tmp_path: Path) -> None:
    ny = ZoneInfo("America/New_York")
    as_of = datetime(2024, 11, 13, 14, 30, tzinfo=ny)  # a Wednesday afternoon, EST
    special = [
        as_of,
        datetime(2024, 3, 10, 1, 59, 59, 999_999, tzinfo=ny),  # the last EST instant before the jump
        datetime(2024, 3, 10, 3, 0, tzinfo=ny),  # the first EDT instant (= 07:00Z)
        datetime(2024, 3, 10, 23, 59, 59, 999_999, tzinfo=ny),  # end of the 167-hour week
        datetime(2024, 3, 11, 0, 0, tzinfo=ny),  # Monday 00:00 EDT = 04:00Z: the next week
        datetime(2024, 11, 3, 1, 30, tzinfo=ny),  # 01:30 EDT (= 05:30Z) ...
        datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ny),  # ... and 01:30 EST (= 06:30Z), one hour later
        datetime(2024, 11, 3, 23, 59, 59, tzinfo=ny),  # end of the 169-hour week
        datetime(2024, 11, 4, 0, 0, tzinfo=ny),  # Monday 00:00 EST = 05:00Z
    ]
    payments = generate_payments(
        202,
        first=date(2024, 2, 12),
        last=date(2024, 11, 17),
        grain="week",
        timezone="America/New_York",
        n_users=200,
        n_payments=1500,
        special_instants=special,
    )
    write_source(spark, tmp_path / "src", payments)
    config = job_config(tmp_path / "src", tmp_path, grain="week", timezone="America/New_York")

    summary = run(spark, config, "2024-11-13T14:30:00")

    expected = reference(spark, payments, grain="week", timezone="America/New_York", as_of=as_of)
    assert_history(spark, tmp_path / "history", expected)
    assert_deltalake_reads(tmp_path / "history", expected)
    # Every ISO week (Sunday snapshot dates) from the week of Feb 12 to the open week ending Nov 17.
    assert summary.snapshots_written == expected.dates()
    assert summary.snapshots_written[0] == "2024-02-18" and summary.snapshots_written[-1] == "2024-11-17"
    assert len(summary.snapshots_written) == 40


# --------------------------------------------------------------------------------------------------------
# 3. Quarterly, Europe/Berlin, periods.start; BIGINT ids and DOUBLE amounts
# --------------------------------------------------------------------------------------------------------


def test_quarterly_berlin_periods_start_integer_ids_double_amounts(spark: SparkSession, tmp_path: Path) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    as_of = datetime(2024, 8, 20, 9, 15, tzinfo=berlin)
    special = [
        datetime(2023, 3, 31, 23, 59, 59, tzinfo=berlin),  # before periods.start's quarter: still counts
        datetime(2023, 4, 1, tzinfo=berlin),  # Q2 2023 starts (CEST)
        datetime(2023, 6, 30, 23, 59, 59, 999_999, tzinfo=berlin),
        datetime(2023, 10, 1, tzinfo=berlin),  # CEST
        datetime(2024, 1, 1, tzinfo=berlin),  # CET
        datetime(2024, 3, 31, 1, 30, tzinfo=UTC),  # the hour DST skips in Berlin (02:00-03:00 local)
    ]
    payments = generate_payments(
        303,
        first=date(2022, 11, 1),
        last=date(2024, 9, 30),
        grain="quarter",
        timezone="Europe/Berlin",
        n_users=250,
        n_payments=2000,
        integer_ids=True,
        float_amounts=True,
        special_instants=special,
    )
    write_source(spark, tmp_path / "src", payments, integer_ids=True, float_amounts=True)
    config = job_config(tmp_path / "src", tmp_path, grain="quarter", timezone="Europe/Berlin", start="2023-05-10")

    summary = run(spark, config, "2024-08-20T09:15:00")

    expected = reference(
        spark,
        payments,
        grain="quarter",
        timezone="Europe/Berlin",
        as_of=as_of,
        integer_ids=True,
        float_amounts=True,
        periods_start=date(2023, 5, 10),
    )
    # The data really has users whose latest payment precedes the first written quarter (Q2 2023).
    q2_start = micros(datetime(2023, 4, 1, tzinfo=berlin))
    assert any(row[OUTPUT_COLUMNS.index("max_payment_date")] < q2_start for row in expected.rows)

    history_df = assert_history(spark, tmp_path / "history", expected)
    assert history_df.schema["user_id"].dataType == T.LongType()
    assert history_df.schema["monetary"].dataType == T.DecimalType(38, 6)
    pdf = assert_deltalake_reads(tmp_path / "history", expected)
    assert pdf["user_id"].dtype == "int64"
    assert summary.snapshots_written == expected.dates()
    assert summary.snapshots_written == [
        "2023-06-30",
        "2023-09-30",
        "2023-12-31",
        "2024-03-31",
        "2024-06-30",
        "2024-09-30",
    ]


# --------------------------------------------------------------------------------------------------------
# 4. A scheduled sequence: mid-month run, then a run after the month end, then the same run again
# --------------------------------------------------------------------------------------------------------


def test_scheduled_runs_finalise_the_month_and_repeat_identically(spark: SparkSession, tmp_path: Path) -> None:
    zone = "Asia/Kolkata"  # +05:30: months end at 18:30Z
    kolkata = ZoneInfo(zone)
    as_of_a = datetime(2024, 5, 14, 10, 0, tzinfo=kolkata)
    as_of_b = datetime(2024, 6, 3, 8, 0, tzinfo=kolkata)
    payments = generate_payments(
        404,
        first=date(2023, 9, 1),
        last=date(2024, 7, 15),
        grain="month",
        timezone=zone,
        n_users=200,
        n_payments=1500,
        special_instants=[as_of_a, datetime(2024, 6, 1, tzinfo=kolkata), as_of_b],
    )
    write_source(spark, tmp_path / "src", payments)
    config = job_config(tmp_path / "src", tmp_path, grain="month", timezone=zone)
    history = tmp_path / "history"

    first = run(spark, config, "2024-05-14T10:00:00")
    assert first.mode == "full"
    assert first.snapshots_written[0] == "2023-09-30" and first.snapshots_written[-1] == "2024-05-31"
    version_a = delta_version(spark, history)
    may = deltalake.DeltaTable(str(history)).to_pandas(
        partitions=[("snapshot_date", "=", "2024-05-31")], columns=["is_final", "cutoff_ts"]
    )
    assert set(may["is_final"]) == {False}
    assert set(may["cutoff_ts"]) == {pd.Timestamp(as_of_a)}

    second = run(spark, config, "2024-06-03T08:00:00")
    assert second.mode == "scheduled"
    assert second.snapshots_written == ["2024-05-31", "2024-06-30"]  # May finalised, June open
    version_b = delta_version(spark, history)
    expected = reference(spark, payments, grain="month", timezone=zone, as_of=as_of_b)
    assert_history(spark, history, expected)
    assert_deltalake_reads(history, expected)
    # The final snapshots before May were not rewritten: the very same data files.
    files_a, files_b = partition_files(history, version_a), partition_files(history, version_b)
    untouched = [d for d in files_a if d < "2024-05-31"]
    assert len(untouched) == 8
    assert {d: files_b[d] for d in untouched} == {d: files_a[d] for d in untouched}
    assert files_b["2024-05-31"].isdisjoint(files_a["2024-05-31"])

    third = run(spark, config, "2024-06-03T08:00:00")
    assert third.snapshots_written == ["2024-06-30"]
    version_c = delta_version(spark, history)
    assert version_c > version_b
    assert_history(spark, history, expected, version=version_c)
    files_c = partition_files(history, version_c)
    assert {d: f for d, f in files_c.items() if d != "2024-06-30"} == {
        d: f for d, f in files_b.items() if d != "2024-06-30"
    }


# --------------------------------------------------------------------------------------------------------
# 5. Late data repaired with --from (Delta source)
# --------------------------------------------------------------------------------------------------------


def test_late_data_repair_from_a_final_month(spark: SparkSession, tmp_path: Path) -> None:
    zone = "Europe/London"
    london = ZoneInfo(zone)
    as_of = datetime(2024, 9, 18, 12, 0, tzinfo=london)
    payments = generate_payments(
        505,
        first=date(2023, 10, 1),
        last=date(2024, 9, 30),
        grain="month",
        timezone=zone,
        n_users=200,
        n_payments=1500,
    )
    src, history = tmp_path / "src", tmp_path / "history"
    write_source(spark, src, payments, fmt="delta")
    config = job_config(src, tmp_path, grain="month", timezone=zone, fmt="delta")
    run(spark, config, "2024-09-18T12:00:00")
    version_before = delta_version(spark, history)

    existing_user = payments[0].user_id
    late = [
        Payment(existing_user, "late-1", datetime(2024, 3, 15, 10, 0, tzinfo=london), Decimal("42.00")),
        # 23:59:59.999999 BST on March 31st (DST began that morning): still March.
        Payment(existing_user, "late-2", datetime(2024, 3, 31, 23, 59, 59, 999_999, tzinfo=london), Decimal("0.01")),
        # 00:00 on April 1st: April, not March.
        Payment("late-user", "late-3", datetime(2024, 4, 1, tzinfo=london), Decimal("10.00")),
    ]
    write_source(spark, src, late, fmt="delta", mode="append")

    summary = run(spark, config, "2024-09-18T12:00:00", date_from=date(2024, 3, 31))

    assert summary.mode == "range"
    # Literal dates from --from up to the open period; the five months before March are not rewritten.
    expected = reference(spark, payments + late, grain="month", timezone=zone, as_of=as_of)
    assert summary.snapshots_written == [d for d in expected.dates() if d >= "2024-03-31"]
    assert len(summary.snapshots_written) == 7
    assert_history(spark, history, expected)
    assert_deltalake_reads(history, expected)
    files_before = partition_files(history, version_before)
    files_after = partition_files(history, delta_version(spark, history))
    untouched = [d for d in files_before if d < "2024-03-31"]
    assert len(untouched) == 5
    assert {d: files_after[d] for d in untouched} == {d: files_before[d] for d in untouched}


# --------------------------------------------------------------------------------------------------------
# 6. Dirty input
# --------------------------------------------------------------------------------------------------------

DIRTY_ZONE = "Australia/Sydney"
DIRTY_AS_OF_TEXT = "2024-06-20T12:00:00"
DIRTY_AS_OF = datetime(2024, 6, 20, 12, 0, tzinfo=ZoneInfo(DIRTY_ZONE))


def dirty_payments(*, with_copied_conflict: bool = True) -> list[Payment]:
    """Clean generated payments (DOUBLE amounts) plus every kind of bad row SPEC §2.1 lists.

    `with_copied_conflict` adds one payment_id with copies A, A, B (an exact copy inside a conflict)."""
    base = generate_payments(
        606,
        first=date(2024, 1, 1),
        last=date(2024, 6, 30),
        grain="month",
        timezone=DIRTY_ZONE,
        n_users=150,
        n_payments=1200,
        float_amounts=True,
    )
    day = datetime(2024, 2, 10, 15, 0, tzinfo=UTC)
    nan, inf = float("nan"), float("inf")
    extra = [
        *base[0:15],  # exact duplicates: two copies
        *base[15:18],  # ... three copies
        *base[15:18],
        replace(base[20], amount=base[20].amount + 1.0),  # conflicting: amount
        replace(base[21], user_id="c9999"),  # conflicting: user
        replace(base[22], payment_date=base[22].payment_date + timedelta(microseconds=1)),  # conflicting: date
        # A bad copy is rejected for its own reason; the good copy is then the only one left: valid.
        replace(base[24], amount=None),
        replace(base[25], amount=-1.0),
        replace(base[26], amount=nan),
        # Nulls, and the first null column wins.
        Payment(None, "d-01", day, 5.0),
        Payment(None, "d-02", day, nan),
        Payment("c0001", None, day, 5.0),
        Payment("c0001", None, None, None),
        Payment("c0001", None, None, None),  # an exact copy of a rejected row is rejected too
        Payment("c0002", "d-03", None, 5.0),
        Payment("c0002", "d-04", None, -5.0),
        Payment("c0003", "d-05", day, None),
        Payment("c0003", "d-06", day, None),
        # Not numbers, then negatives.
        Payment("c0004", "d-07", day, nan),
        Payment("c0004", "d-08", day, inf),
        Payment("c0004", "d-09", day, -inf),  # invalid before negative
        Payment("c0005", "d-10", day, -5.0),
        Payment("c0005", "d-10", day, -5.0),
        Payment("c0005", "d-11", day, -0.01),
        # Zero is not negative.
        Payment("c0006", "d-12", day, 0.0),
        Payment("c0006", "d-13", day, -0.0),
    ]
    if with_copied_conflict:  # A, A, B: "every copy rejected" (SPEC §2.1), all three
        extra += [base[23], replace(base[23], amount=base[23].amount + 0.01)]
    rows = base + extra
    random.Random(6).shuffle(rows)
    return rows


def row_reason(payment: Payment) -> str | None:
    """SPEC §2.1 row checks, in order."""
    for name in ("user_id", "payment_id", "payment_date"):
        if getattr(payment, name) is None:
            return f"null_{name}"
    if payment.amount is None:
        return "null_payment_amount"
    if not math.isfinite(payment.amount):
        return "invalid_amount"
    if payment.amount < 0:
        return "negative_amount"
    return None


@dataclass(frozen=True)
class Cleaned:
    valid: list[Payment]
    rejects: list[tuple[Payment, str]]
    duplicates_collapsed: int
    copied_conflicts: set[Any]  # payment_ids rejected as conflicting that also have exact copies


def clean(rows: list[Payment]) -> Cleaned:
    """SPEC §2.1: row reasons first; then, among the rows left, exact duplicates collapse to one and a
    payment_id with copies that differ has every copy rejected."""
    rejects = [(p, reason) for p in rows if (reason := row_reason(p)) is not None]
    copies: dict[Any, list[Payment]] = {}
    for p in rows:
        if row_reason(p) is None:
            copies.setdefault(p.payment_id, []).append(p)
    valid, collapsed, copied_conflicts = [], 0, set()
    for payment_id, same_id in copies.items():
        if len(set(same_id)) > 1:
            rejects += [(p, "conflicting_duplicate") for p in same_id]
            if len(set(same_id)) < len(same_id):
                copied_conflicts.add(payment_id)
        else:
            valid.append(same_id[0])
            collapsed += len(same_id) - 1
    return Cleaned(valid, rejects, collapsed, copied_conflicts)


def _amount_key(value: float | None) -> str | None:
    return None if value is None else repr(float(value))


def expected_reject_rows(cleaned: Cleaned) -> Counter:
    return Counter(
        (
            p.user_id,
            p.payment_id,
            None if p.payment_date is None else p.payment_date.astimezone(UTC).replace(tzinfo=None),
            _amount_key(p.amount),
            reason,
        )
        for p, reason in cleaned.rejects
    )


def actual_reject_rows(spark: SparkSession, path: Path, summary: RunSummary) -> Counter:
    """This run's rows of the rejects table. Original values are strings; the timestamp is read as UTC wall
    clock (the session time zone the job sets) and the amount as a double."""
    df = read_delta(spark, path)
    assert df.columns == [
        "user_id",
        "payment_id",
        "payment_date",
        "payment_amount",
        "reason",
        "run_id",
        "as_of",
        "run_started_at",
    ]
    assert all(isinstance(f.dataType, T.StringType) for f in df.schema.fields[:6])
    rows = df.where(F.col("run_id") == summary.run_id).select(
        "user_id",
        "payment_id",
        "payment_date",
        "payment_amount",
        "reason",
        F.unix_micros("as_of").alias("as_of"),
        F.col("run_started_at").isNotNull().alias("has_started_at"),
    )
    result: Counter = Counter()
    as_of_micros = (DIRTY_AS_OF - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    for r in rows.collect():
        assert (r["as_of"], r["has_started_at"]) == (as_of_micros, True)
        paid_at = None if r["payment_date"] is None else datetime.fromisoformat(r["payment_date"])
        amount = None if r["payment_amount"] is None else float(r["payment_amount"])
        result[(r["user_id"], r["payment_id"], paid_at, _amount_key(amount), r["reason"])] += 1
    return result


def assert_summary_counts(summary: RunSummary, rows: list[Payment], cleaned: Cleaned) -> None:
    reasons = Counter(reason for _, reason in cleaned.rejects)
    assert summary.input_rows == len(rows)
    assert summary.valid_rows == len(cleaned.valid)
    assert summary.rejects_by_reason == dict(reasons)
    assert summary.rejected_rows == len(cleaned.rejects)
    assert summary.duplicates_collapsed == cleaned.duplicates_collapsed


def assert_rejects(spark: SparkSession, path: Path, summary: RunSummary, cleaned: Cleaned) -> None:
    actual, expected = actual_reject_rows(spark, path, summary), expected_reject_rows(cleaned)
    assert actual == expected, f"missing: {expected - actual}; unexpected: {actual - expected}"


def test_dirty_input_history_rejects_and_counts(spark: SparkSession, tmp_path: Path) -> None:
    rows = dirty_payments()
    cleaned = clean(rows)
    # The data really has every case (guards the test data, not the job).
    assert set(reason for _, reason in cleaned.rejects) == {
        "null_user_id",
        "null_payment_id",
        "null_payment_date",
        "null_payment_amount",
        "invalid_amount",
        "negative_amount",
        "conflicting_duplicate",
    }
    assert cleaned.duplicates_collapsed == 15 + 2 * 3
    assert len(cleaned.copied_conflicts) == 1
    assert 0.01 < len(cleaned.rejects) / len(rows) < 0.5
    write_source(spark, tmp_path / "src", rows, float_amounts=True)
    tolerant = job_config(tmp_path / "src", tmp_path, grain="month", timezone=DIRTY_ZONE)
    default = job_config(tmp_path / "src", tmp_path, grain="month", timezone=DIRTY_ZONE, quality={})
    history, current, rejects = tmp_path / "history", tmp_path / "current", tmp_path / "rejects"

    summary = run(spark, tolerant, DIRTY_AS_OF_TEXT)

    expected = reference(
        spark, cleaned.valid, grain="month", timezone=DIRTY_ZONE, as_of=DIRTY_AS_OF, float_amounts=True
    )
    assert_history(spark, history, expected)

    # The same input under the default max_reject_ratio (0.01): the run fails before writing anything but the
    # rejects; history and current stay at their versions.
    assert default.quality.max_reject_ratio == 0.01
    history_version, current_version = delta_version(spark, history), delta_version(spark, current)
    failed = RunSummary(run_id=new_run_id())
    with pytest.raises(InputDataError, match="rejected"):
        run_job(spark, default, RunRequest(as_of=parse_as_of(DIRTY_AS_OF_TEXT, DIRTY_ZONE)), failed)
    assert delta_version(spark, history) == history_version
    assert delta_version(spark, current) == current_version
    assert read_delta(spark, rejects).select("run_id").distinct().count() == 2

    # Rejects and counts of both runs; the payment with copies A, A, B is checked last, on its own.
    expected_rejects = expected_reject_rows(cleaned)
    expected_reasons = Counter(reason for _, reason in cleaned.rejects)
    actual_by_run = {s.run_id: actual_reject_rows(spark, rejects, s) for s in (summary, failed)}
    for run_summary in (summary, failed):
        actual_rejects = actual_by_run[run_summary.run_id]
        assert {k: n for k, n in actual_rejects.items() if k[1] not in cleaned.copied_conflicts} == {
            k: n for k, n in expected_rejects.items() if k[1] not in cleaned.copied_conflicts
        }
        assert (run_summary.input_rows, run_summary.valid_rows) == (len(rows), len(cleaned.valid))
        other_reasons = {r: n for r, n in run_summary.rejects_by_reason.items() if r != "conflicting_duplicate"}
        assert other_reasons == {r: n for r, n in expected_reasons.items() if r != "conflicting_duplicate"}
    for run_summary in (summary, failed):
        # SPEC §2.1: "same payment_id, any other column different: every copy rejected" -- all three rows.
        actual_rejects = actual_by_run[run_summary.run_id]
        assert {k: n for k, n in actual_rejects.items() if k[1] in cleaned.copied_conflicts} == {
            k: n for k, n in expected_rejects.items() if k[1] in cleaned.copied_conflicts
        }
        assert_summary_counts(run_summary, rows, cleaned)


def test_too_many_rejects_on_a_first_run_write_only_the_rejects(spark: SparkSession, tmp_path: Path) -> None:
    rows = dirty_payments(with_copied_conflict=False)
    cleaned = clean(rows)
    assert len(cleaned.rejects) / len(rows) > 0.01
    write_source(spark, tmp_path / "src", rows, float_amounts=True)
    default = job_config(tmp_path / "src", tmp_path, grain="month", timezone=DIRTY_ZONE, quality={})
    history, current, rejects = tmp_path / "history", tmp_path / "current", tmp_path / "rejects"

    failed = RunSummary(run_id=new_run_id())
    with pytest.raises(InputDataError, match="rejected"):
        run_job(spark, default, RunRequest(as_of=parse_as_of(DIRTY_AS_OF_TEXT, DIRTY_ZONE)), failed)

    assert not DeltaTable.isDeltaTable(spark, str(history)) and not history.exists()
    assert not current.exists()
    assert_summary_counts(failed, rows, cleaned)
    assert_rejects(spark, rejects, failed, cleaned)
