"""Scores and the segment matrix (SPEC §4.2, §4.3)."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from rfm.config import parse_config
from rfm.scoring import with_scores, with_segment

DEFAULT_CELLS = parse_config(
    {
        "source": {"format": "parquet", "path": "x"},
        "output": {"history_path": "h", "current_path": "c", "rejects_path": "r"},
    }
).scoring.segment_by_cell()

# SPEC §4.3 written out row by row (R = 5 .. 1, F = 1 .. 5), independently of rfm.config.
SPEC_MATRIX = {
    5: ["New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"],
    4: ["Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers", "Loyal Customers"],
    3: ["About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"],
    2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Cannot Lose Them"],
    1: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Cannot Lose Them"],
}

PERCENTILES = T.StructType(
    [
        T.StructField("recency_percentile", T.DoubleType()),
        T.StructField("frequency_percentile", T.DoubleType()),
        T.StructField("monetary_percentile", T.DoubleType()),
    ]
)
SCORED = T.StructType(
    [*PERCENTILES.fields, *[T.StructField(f"{m}_score", T.IntegerType()) for m in ("recency", "frequency", "monetary")]]
)


def test_scores_at_and_around_every_threshold(spark: SparkSession) -> None:
    rows = [(0.0, 0.19999, 0.2), (0.39, 0.4, 0.59999), (0.6, 0.79, 0.8), (1.0, 0.8000001, 0.5)]
    expected = [
        (0.0, 0.19999, 0.2, 1, 1, 2),
        (0.39, 0.4, 0.59999, 2, 3, 3),
        (0.6, 0.79, 0.8, 4, 4, 5),
        (1.0, 0.8000001, 0.5, 5, 5, 3),
    ]
    actual = spark.createDataFrame(rows, PERCENTILES).transform(with_scores, thresholds=(0.2, 0.4, 0.6, 0.8))
    assert_df_equality(actual, spark.createDataFrame(expected, SCORED), ignore_row_order=True, ignore_nullable=True)


def test_configured_thresholds_are_used(spark: SparkSession) -> None:
    rows = [(0.5, 0.55, 0.96)]
    actual = spark.createDataFrame(rows, PERCENTILES).transform(with_scores, thresholds=(0.5, 0.6, 0.9, 0.95))
    assert_df_equality(actual, spark.createDataFrame([(0.5, 0.55, 0.96, 2, 2, 5)], SCORED), ignore_nullable=True)


def _segments(spark: SparkSession, cells: list[tuple[int, int]], by_cell: dict[tuple[int, int], str]) -> dict:
    schema = T.StructType(
        [T.StructField("recency_score", T.IntegerType()), T.StructField("frequency_score", T.IntegerType())]
    )
    rows = spark.createDataFrame(cells, schema).transform(with_segment, segment_by_cell=by_cell).collect()
    return {(r["recency_score"], r["frequency_score"]): r["rfm_segment"] for r in rows}


def test_all_25_cells_of_the_default_matrix(spark: SparkSession) -> None:
    cells = [(r, f) for r in range(1, 6) for f in range(1, 6)]
    expected = {(r, f): SPEC_MATRIX[r][f - 1] for r, f in cells}
    assert _segments(spark, cells, DEFAULT_CELLS) == expected


@pytest.mark.parametrize(
    ("r", "f", "segment"),
    [
        (4, 3, "Potential Loyalists"),
        (4, 5, "Loyal Customers"),
        (5, 4, "Champions"),
        (1, 5, "Cannot Lose Them"),
        (1, 4, "At Risk"),
    ],
)
def test_worked_examples_of_the_original_design(spark: SparkSession, r: int, f: int, segment: str) -> None:
    assert _segments(spark, [(r, f)], DEFAULT_CELLS) == {(r, f): segment}


def test_a_configured_matrix_replaces_the_default(spark: SparkSession) -> None:
    custom = {(r, f): ("Top" if r == 5 and f == 5 else "Rest") for r in range(1, 6) for f in range(1, 6)}
    assert _segments(spark, [(5, 5), (5, 4), (1, 1)], custom) == {(5, 5): "Top", (5, 4): "Rest", (1, 1): "Rest"}
