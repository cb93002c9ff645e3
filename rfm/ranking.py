"""PERCENT_RANK within each snapshot (SPEC §4.1); the SQL original ranked across all snapshots at once."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F


def _percent_rank_within_snapshot(order: Column) -> Column:
    # Ranking functions take exactly this frame; naming it keeps the window explicit.
    per_snapshot = (
        Window.partitionBy("snapshot_date").orderBy(order).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return F.percent_rank().over(per_snapshot)


def with_percentiles(snapshot_users_df: DataFrame) -> DataFrame:
    """(rank - 1) / (n - 1), ties sharing the lowest rank; 0.0 for a one-user snapshot.
    Recency is ranked descending so that the most recent buyer ranks highest."""
    return (
        snapshot_users_df.withColumn("recency_percentile", _percent_rank_within_snapshot(F.col("recency_days").desc()))
        .withColumn("frequency_percentile", _percent_rank_within_snapshot(F.col("frequency").asc()))
        .withColumn("monetary_percentile", _percent_rank_within_snapshot(F.col("monetary").asc()))
    )
