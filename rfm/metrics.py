"""Per-(user, period) aggregation and the cumulative values carried forward to every snapshot.

The SQL original range-joined every payment to every later period end (payments x periods rows). Here
each payment gets its period index, payments are aggregated once per (user, period), running totals are
taken per user, and each running total is expanded only over the snapshots until that user's next active
period: cost grows with payments + users x snapshots.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from rfm.periods import EPOCH, EPOCH_MONDAY

MICROS_PER_DAY = 86_400_000_000.0


def local_date(instant: Column, timezone: str) -> Column:
    """The calendar date of an instant in `timezone` (the session time zone is UTC)."""
    return F.to_date(F.from_utc_timestamp(instant, timezone))


def period_index(day: Column, grain: str) -> Column:
    """Spark twin of `rfm.periods.period_index`."""
    if grain == "day":
        return F.datediff(day, F.lit(EPOCH))
    if grain == "week":
        return F.floor(F.datediff(day, F.lit(EPOCH_MONDAY)) / 7).cast("int")
    if grain == "month":
        return F.year(day) * 12 + F.month(day) - 1
    if grain == "quarter":
        return F.year(day) * 4 + F.quarter(day) - 1
    raise ValueError(f"unknown grain {grain!r}")


def filter_visible(payments_df: DataFrame, as_of: datetime) -> DataFrame:
    """Payments at or after as_of are not yet visible (SPEC §2.1): they enter later snapshots."""
    return payments_df.where(F.col("payment_date") < F.lit(as_of))


def with_period_index(payments_df: DataFrame, grain: str, timezone: str) -> DataFrame:
    return payments_df.withColumn("period_index", period_index(local_date(F.col("payment_date"), timezone), grain))


def aggregate_user_periods(payments_df: DataFrame) -> DataFrame:
    """One row per (user, period with payments). payment_id is unique among valid payments."""
    return payments_df.groupBy("user_id", "period_index").agg(
        F.count(F.lit(1)).alias("period_frequency"),
        F.sum("payment_amount").alias("period_monetary"),
        F.max("payment_date").alias("period_max_payment_date"),
    )


def with_cumulative_values(user_periods_df: DataFrame, money_scale: int) -> DataFrame:
    """Running frequency, monetary and latest payment per user, and the index of the user's next active
    period (null for the last one)."""
    running = (
        Window.partitionBy("user_id").orderBy("period_index").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    following = Window.partitionBy("user_id").orderBy("period_index")
    return user_periods_df.select(
        "user_id",
        "period_index",
        F.lead("period_index").over(following).alias("next_period_index"),
        F.max("period_max_payment_date").over(running).alias("max_payment_date"),
        F.sum("period_frequency").over(running).cast("bigint").alias("frequency"),
        F.sum("period_monetary").over(running).cast(f"decimal(38,{money_scale})").alias("monetary"),
    )


def expand_to_snapshots(
    cumulative_df: DataFrame, snapshots_df: DataFrame, first_index: int, last_index: int
) -> DataFrame:
    """One row per (user, snapshot) for the snapshots in [first_index, last_index]: each running total
    covers the periods from its own up to the one before the user's next active period."""
    covered_from = F.greatest(F.col("period_index"), F.lit(first_index))
    covered_to = F.least(F.coalesce(F.col("next_period_index") - 1, F.lit(last_index)), F.lit(last_index))
    covers_any = covered_from <= covered_to
    return (
        cumulative_df.where(covers_any)
        .withColumn("snapshot_index", F.explode(F.sequence(covered_from, covered_to)))
        .join(F.broadcast(snapshots_df), on="snapshot_index", how="inner")
        .select("snapshot_date", "cutoff_ts", "is_final", "user_id", "max_payment_date", "frequency", "monetary")
    )


def with_recency_days(snapshot_users_df: DataFrame) -> DataFrame:
    micros_between = F.unix_micros("cutoff_ts") - F.unix_micros("max_payment_date")
    return snapshot_users_df.withColumn("recency_days", micros_between / F.lit(MICROS_PER_DAY))
