"""The output contract (SPEC §5.1): column names, order, types and nullability."""

from __future__ import annotations

from pyspark.sql import types as T

HISTORY_COLUMNS = (
    "snapshot_date",
    "cutoff_ts",
    "is_final",
    "user_id",
    "max_payment_date",
    "recency_days",
    "frequency",
    "monetary",
    "recency_percentile",
    "frequency_percentile",
    "monetary_percentile",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "rfm_segment",
)

PARTITION_COLUMN = "snapshot_date"

SNAPSHOTS_SCHEMA = T.StructType(
    [
        T.StructField("snapshot_index", T.IntegerType(), False),
        T.StructField("snapshot_date", T.DateType(), False),
        T.StructField("cutoff_ts", T.TimestampType(), False),
        T.StructField("is_final", T.BooleanType(), False),
    ]
)

REJECTS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), True),
        T.StructField("payment_id", T.StringType(), True),
        T.StructField("payment_date", T.StringType(), True),
        T.StructField("payment_amount", T.StringType(), True),
        T.StructField("reason", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("as_of", T.TimestampType(), False),
        T.StructField("run_started_at", T.TimestampType(), False),
    ]
)

# CHECK constraints of the history table: name -> SQL condition over its own columns.
HISTORY_CONSTRAINTS = {
    "recency_score_1_to_5": "recency_score BETWEEN 1 AND 5",
    "frequency_score_1_to_5": "frequency_score BETWEEN 1 AND 5",
    "monetary_score_1_to_5": "monetary_score BETWEEN 1 AND 5",
    "recency_percentile_0_to_1": "recency_percentile BETWEEN 0 AND 1",
    "frequency_percentile_0_to_1": "frequency_percentile BETWEEN 0 AND 1",
    "monetary_percentile_0_to_1": "monetary_percentile BETWEEN 0 AND 1",
}


def history_schema(user_id_type: T.DataType, money_scale: int) -> T.StructType:
    """Every column is NOT NULL: a row exists only for a user with at least one payment before the cutoff."""
    types: dict[str, T.DataType] = {
        "snapshot_date": T.DateType(),
        "cutoff_ts": T.TimestampType(),
        "is_final": T.BooleanType(),
        "user_id": user_id_type,
        "max_payment_date": T.TimestampType(),
        "recency_days": T.DoubleType(),
        "frequency": T.LongType(),
        "monetary": T.DecimalType(38, money_scale),
        "recency_percentile": T.DoubleType(),
        "frequency_percentile": T.DoubleType(),
        "monetary_percentile": T.DoubleType(),
        "recency_score": T.IntegerType(),
        "frequency_score": T.IntegerType(),
        "monetary_score": T.IntegerType(),
        "rfm_segment": T.StringType(),
    }
    return T.StructType([T.StructField(name, types[name], False) for name in HISTORY_COLUMNS])


def without_nullability(schema: T.StructType) -> list[tuple[str, str]]:
    return [(f.name, f.dataType.simpleString()) for f in schema.fields]
