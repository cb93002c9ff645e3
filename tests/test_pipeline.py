"""The transforms from valid payments to history rows, on small inline data worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm.config import DEFAULT_SEGMENTS, ScoringConfig
from rfm.metrics import local_date, period_index
from rfm.periods import snapshot_date
from rfm.pipeline import build_history
from rfm.plan import RunRequest, build_plan
from rfm.schema import history_schema

PAYMENTS = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("payment_id", T.StringType()),
        T.StructField("payment_date", T.TimestampType()),
        T.StructField("payment_amount", T.DecimalType(12, 2)),
    ]
)
SEGMENTS = ScoringConfig(segments=dict(DEFAULT_SEGMENTS)).segment_by_cell()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def naive(*parts: int) -> datetime:
    """How collect() returns a TIMESTAMP: naive, in the process time zone (UTC in tests, see conftest)."""
    return datetime(*parts)  # type: ignore[misc]


def history(spark: SparkSession, rows: list[tuple], as_of: datetime, grain: str = "month", tz: str = "UTC"):
    payments_df = spark.createDataFrame(rows, PAYMENTS)
    earliest = min(r[2] for r in rows if r[2] < as_of)
    plan = build_plan(
        RunRequest(as_of), grain=grain, timezone=tz, periods_start=None, earliest_payment=earliest, written={}
    )
    return build_history(
        payments_df,
        plan,
        grain=grain,
        timezone=tz,
        money_scale=2,
        thresholds=(0.2, 0.4, 0.6, 0.8),
        segment_by_cell=SEGMENTS,
    )


def test_monthly_history_carries_users_forward_with_ties_boundaries_and_open_period(spark: SparkSession) -> None:
    rows = [
        ("u1", "p1", utc(2024, 1, 10), Decimal("10.00")),
        ("u1", "p2", utc(2024, 2, 1), Decimal("5.00")),  # exactly 00:00 on the 1st: February, not January
        ("u2", "p3", utc(2024, 2, 15, 12), Decimal("20.00")),
        ("u4", "p4", utc(2024, 2, 20), Decimal("15.00")),
        ("u3", "p5", utc(2024, 3, 15, 12), Decimal("99.00")),  # exactly as_of: not yet visible
    ]
    as_of = utc(2024, 3, 15, 12)
    jan, feb, mar = date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)
    jan_cut, feb_cut = utc(2024, 2, 1), utc(2024, 3, 1)
    d = Decimal
    expected = [
        # January: u1 alone -> every percentile 0.0 -> (1, 1, 1) Hibernating; 2024-01-10 -> 02-01 is 22 days.
        (jan, jan_cut, True, "u1", utc(2024, 1, 10), 22.0, 1, d("10.00"), 0.0, 0.0, 0.0, 1, 1, 1, "Hibernating"),
        # February (29 days in 2024): recency u1 29 (rank 1), u2 14.5 (2), u4 10 (3) -> 0, .5, 1;
        # frequency u2 = u4 = 1 tie at rank 1 -> 0.0, u1 -> 1.0; monetary u1 = u4 = 15 tie -> 0.0, u2 -> 1.0.
        (feb, feb_cut, True, "u1", utc(2024, 2, 1), 29.0, 2, d("15.00"), 0.0, 1.0, 0.0, 1, 5, 1, "Cannot Lose Them"),
        (feb, feb_cut, True, "u2", utc(2024, 2, 15, 12), 14.5, 1, d("20.00"), 0.5, 0.0, 1.0, 3, 1, 5, "About to Sleep"),
        (feb, feb_cut, True, "u4", utc(2024, 2, 20), 10.0, 1, d("15.00"), 1.0, 0.0, 0.0, 5, 1, 1, "New Customers"),
        # March is open: cutoff = as_of; nobody paid in March before as_of, all are carried forward.
        (mar, as_of, False, "u1", utc(2024, 2, 1), 43.5, 2, d("15.00"), 0.0, 1.0, 0.0, 1, 5, 1, "Cannot Lose Them"),
        (mar, as_of, False, "u2", utc(2024, 2, 15, 12), 29.0, 1, d("20.00"), 0.5, 0.0, 1.0, 3, 1, 5, "About to Sleep"),
        (mar, as_of, False, "u4", utc(2024, 2, 20), 24.5, 1, d("15.00"), 1.0, 0.0, 0.0, 5, 1, 1, "New Customers"),
    ]
    expected_df = spark.createDataFrame(expected, history_schema(T.StringType(), 2))
    assert_df_equality(history(spark, rows, as_of), expected_df, ignore_row_order=True, ignore_nullable=True)


def test_as_of_on_a_boundary_opens_the_new_period_with_the_closed_periods_payments(spark: SparkSession) -> None:
    rows = [("u1", "p1", utc(2024, 1, 31, 12), Decimal("1.50"))]
    actual = history(spark, rows, utc(2024, 2, 1)).select("snapshot_date", "cutoff_ts", "is_final", "recency_days")
    expected = [(date(2024, 1, 31), naive(2024, 2, 1), True, 0.5), (date(2024, 2, 29), naive(2024, 2, 1), False, 0.5)]
    assert sorted(tuple(r) for r in actual.collect()) == expected


def test_weekly_new_york_week_crossing_dst(spark: SparkSession) -> None:
    # Week Mon 2024-03-04 .. Sun 03-10 (DST starts 03-10 02:00 EST): it ends at Mon 03-11 00:00 EDT = 04:00Z.
    rows = [
        ("u1", "p1", utc(2024, 3, 4, 5), Decimal("1.00")),  # Mon 00:00 EST, first instant of the week
        ("u1", "p2", utc(2024, 3, 11, 3, 59), Decimal("1.00")),  # Sun 23:59 EDT: still the same week
        ("u2", "p3", utc(2024, 3, 11, 4), Decimal("1.00")),  # Mon 00:00 EDT: the next week
    ]
    actual = history(spark, rows, utc(2024, 3, 12, 16), grain="week", tz="America/New_York")
    got = sorted((r["snapshot_date"], r["cutoff_ts"], r["user_id"], r["frequency"]) for r in actual.collect())
    assert got == [
        (date(2024, 3, 10), naive(2024, 3, 11, 4), "u1", 2),
        (date(2024, 3, 17), naive(2024, 3, 12, 16), "u1", 2),
        (date(2024, 3, 17), naive(2024, 3, 12, 16), "u2", 1),
    ]
    first_week = actual.where(F.col("snapshot_date") == date(2024, 3, 10)).first()
    assert first_week is not None
    # 2024-03-11 03:59Z -> 04:00Z is one minute.
    assert first_week["recency_days"] == 60_000_000 / 86_400_000_000.0


def test_period_index_of_local_dates_in_a_non_utc_zone(spark: SparkSession) -> None:
    instants = [
        (utc(2024, 3, 1, 4, 59, 59),),  # 2024-02-29 23:59:59 EST -> February
        (utc(2024, 3, 1, 5),),  # 2024-03-01 00:00 EST -> March
        (utc(2023, 12, 31, 23),),  # 2023-12-31 18:00 EST -> Q4 2023
    ]
    df = spark.createDataFrame(instants, "ts timestamp")
    ny_day = local_date(F.col("ts"), "America/New_York")
    got = df.select(period_index(ny_day, "month").alias("m"), period_index(ny_day, "quarter").alias("q")).collect()
    months = [snapshot_date(r["m"], "month") for r in got]
    quarters = [snapshot_date(r["q"], "quarter") for r in got]
    assert months == [date(2024, 2, 29), date(2024, 3, 31), date(2023, 12, 31)]
    assert quarters == [date(2024, 3, 31), date(2024, 3, 31), date(2023, 12, 31)]
