"""The whole computation, top to bottom, as the SQL original's steps: valid payments -> history rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rfm.metrics import (
    aggregate_user_periods,
    expand_to_snapshots,
    filter_visible,
    with_cumulative_values,
    with_period_index,
    with_recency_days,
)
from rfm.plan import RunPlan
from rfm.ranking import with_percentiles
from rfm.schema import HISTORY_COLUMNS, SNAPSHOTS_SCHEMA
from rfm.scoring import with_scores, with_segment


def snapshots_frame(payments_df: DataFrame, plan: RunPlan) -> DataFrame:
    rows = [(s.period_index, s.snapshot_date, s.cutoff_ts, s.is_final) for s in plan.snapshots]
    return payments_df.sparkSession.createDataFrame(rows, SNAPSHOTS_SCHEMA)


def build_history(
    valid_payments_df: DataFrame,
    plan: RunPlan,
    *,
    grain: str,
    timezone: str,
    money_scale: int,
    thresholds: Sequence[float],
    segment_by_cell: Mapping[tuple[int, int], str],
) -> DataFrame:
    """History rows (SPEC §5.1) for the plan's snapshots, from validated payments."""
    return (
        valid_payments_df.transform(filter_visible, plan.as_of)
        .transform(with_period_index, grain=grain, timezone=timezone)
        .transform(aggregate_user_periods)
        .transform(with_cumulative_values, money_scale=money_scale)
        .transform(
            expand_to_snapshots,
            snapshots_df=snapshots_frame(valid_payments_df, plan),
            first_index=plan.first_index,
            last_index=plan.last_index,
        )
        .transform(with_recency_days)
        .transform(with_percentiles)
        .transform(with_scores, thresholds=thresholds)
        .transform(with_segment, segment_by_cell=segment_by_cell)
        .select(*[F.col(c) for c in HISTORY_COLUMNS])
    )
