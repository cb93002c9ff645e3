"""Percentile -> 1..5 score (SPEC §4.2) and the R x F segment matrix (SPEC §4.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def score(percentile: Column, thresholds: Sequence[float]) -> Column:
    """>= t4 -> 5, >= t3 -> 4, >= t2 -> 3, >= t1 -> 2, else 1 (thresholds ascending)."""
    result = F.lit(1)
    for value, threshold in enumerate(thresholds, start=2):
        result = F.when(percentile >= F.lit(threshold), F.lit(value)).otherwise(result)
    return result.cast("int")


def with_scores(percentiles_df: DataFrame, thresholds: Sequence[float]) -> DataFrame:
    return (
        percentiles_df.withColumn("recency_score", score(F.col("recency_percentile"), thresholds))
        .withColumn("frequency_score", score(F.col("frequency_percentile"), thresholds))
        .withColumn("monetary_score", score(F.col("monetary_percentile"), thresholds))
    )


def segment(recency_score: Column, frequency_score: Column, segment_by_cell: Mapping[tuple[int, int], str]) -> Column:
    """Look up the (R, F) cell in a literal map keyed R * 10 + F."""
    cells = F.create_map(
        *chain.from_iterable((F.lit(r * 10 + f), F.lit(name)) for (r, f), name in sorted(segment_by_cell.items()))
    )
    return F.element_at(cells, recency_score * 10 + frequency_score)


def with_segment(scores_df: DataFrame, segment_by_cell: Mapping[tuple[int, int], str]) -> DataFrame:
    return scores_df.withColumn(
        "rfm_segment", segment(F.col("recency_score"), F.col("frequency_score"), segment_by_cell)
    )
