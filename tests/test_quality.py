"""Source schema checks, parsing, and validation outcomes (SPEC §2, §2.1)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from rfm.config import SourceConfig
from rfm.quality import filter_rejected, filter_valid, with_outcome
from rfm.source import SourceSchemaError, conform_payments, inspect_source

SOURCE = SourceConfig(format="parquet", path="/unused")


def outcomes(spark: SparkSession, rows: list[tuple], schema: T.StructType, allow_negative: bool = False) -> DataFrame:
    raw_df = spark.createDataFrame(rows, schema)
    info = inspect_source(raw_df, SOURCE, money_scale=6)
    return with_outcome(conform_payments(raw_df, SOURCE, info, "UTC"), allow_negative)


def schema_of(user: T.DataType, date_type: T.DataType, amount: T.DataType) -> T.StructType:
    return T.StructType(
        [
            T.StructField("user_id", user),
            T.StructField("payment_id", T.StringType()),
            T.StructField("payment_date", date_type),
            T.StructField("payment_amount", amount),
        ]
    )


TS = datetime(2024, 1, 5, 10, tzinfo=UTC)
DOUBLE_SCHEMA = schema_of(T.StringType(), T.TimestampType(), T.DoubleType())


def test_each_row_gets_the_first_reason_that_applies(spark: SparkSession) -> None:
    rows = [
        ("u1", "p1", TS, 10.0),  # valid
        ("u1", "p2", TS, 1.0),  # valid, with an exact duplicate below
        ("u1", "p2", TS, 1.0),  # exact duplicate: collapsed, not rejected
        ("u2", "p3", TS, 5.0),  # conflicting: same payment_id, other amount -> both copies rejected
        ("u2", "p3", TS, 6.0),
        ("u2", "p3", TS, 6.0),  # ...and an exact copy of one of them is a copy too: rejected
        (None, "p4", None, -1.0),  # null user_id wins over null payment_date and negative amount
        ("u3", None, TS, 1.0),
        ("u3", "p6", None, 1.0),
        ("u3", "p7", TS, None),
        ("u3", "p8", TS, float("nan")),
        ("u3", "p9", TS, float("inf")),
        ("u3", "p10", TS, -0.01),
        (None, None, None, None),  # nulls are rejected row by row, never collapsed
        (None, None, None, None),
    ]
    got = sorted(
        (r["raw_payment_id"] or "-", r["raw_payment_amount"] or "-", r["outcome"])
        for r in outcomes(spark, rows, DOUBLE_SCHEMA).collect()
    )
    assert got == sorted(
        [
            ("p1", "10.0", "valid"),
            ("p2", "1.0", "valid"),
            ("p2", "1.0", "duplicate"),
            ("p3", "5.0", "conflicting_duplicate"),
            ("p3", "6.0", "conflicting_duplicate"),
            ("p3", "6.0", "conflicting_duplicate"),
            ("p4", "-1.0", "null_user_id"),
            ("-", "1.0", "null_payment_id"),
            ("p6", "1.0", "null_payment_date"),
            ("p7", "-", "null_payment_amount"),
            ("p8", "NaN", "invalid_amount"),
            ("p9", "Infinity", "invalid_amount"),
            ("p10", "-0.01", "negative_amount"),
            ("-", "-", "null_user_id"),
            ("-", "-", "null_user_id"),
        ]
    )


def test_negative_amounts_can_be_allowed(spark: SparkSession) -> None:
    rows = [("u1", "p1", TS, -2.5)]
    valid = outcomes(spark, rows, DOUBLE_SCHEMA, allow_negative=True).transform(filter_valid).collect()
    assert [(r["payment_id"], r["payment_amount"]) for r in valid] == [("p1", Decimal("-2.500000"))]


def test_rejects_keep_original_values_as_strings(spark: SparkSession) -> None:
    rows = [("u1", "p1", TS, float("nan"))]
    rejected = outcomes(spark, rows, DOUBLE_SCHEMA).transform(filter_rejected).collect()
    assert [tuple(r) for r in rejected] == [("u1", "p1", "2024-01-05 10:00:00", "NaN", "invalid_amount")]


def test_float_amounts_become_exact_decimals_and_decimal_input_keeps_its_scale(spark: SparkSession) -> None:
    doubles = outcomes(spark, [("u1", "p1", TS, 0.1)], DOUBLE_SCHEMA).transform(filter_valid)
    assert doubles.schema["payment_amount"].dataType == T.DecimalType(38, 6)
    assert doubles.first()["payment_amount"] == Decimal("0.100000")  # type: ignore[index]
    decimal_schema = schema_of(T.LongType(), T.TimestampType(), T.DecimalType(10, 3))
    decimals = outcomes(spark, [(7, "p1", TS, Decimal("1.250"))], decimal_schema).transform(filter_valid)
    assert decimals.schema["payment_amount"].dataType == T.DecimalType(10, 3)
    assert decimals.schema["user_id"].dataType == T.LongType()


def test_naive_timestamps_and_dates_are_wall_clock_in_the_configured_zone(spark: SparkSession) -> None:
    schema = T.StructType(
        [
            T.StructField("user_id", T.StringType()),
            T.StructField("payment_id", T.StringType()),
            T.StructField("payment_date", T.TimestampNTZType()),
            T.StructField("payment_amount", T.DecimalType(10, 2)),
            T.StructField("day", T.DateType()),
        ]
    )
    raw_df = spark.createDataFrame([("u", "p", datetime(2024, 7, 1, 9, 30), Decimal("1.00"), date(2024, 1, 2))], schema)
    info = inspect_source(raw_df, SOURCE, 6)
    ntz = conform_payments(raw_df, SOURCE, info, "Europe/Berlin").first()
    # 09:30 in Berlin in July (CEST, +02:00) is 07:30Z; collect() gives naive UTC (see conftest).
    assert ntz is not None and ntz["payment_date"] == datetime(2024, 7, 1, 7, 30)
    by_date = SourceConfig(format="parquet", path="/unused", columns={"payment_date": "day"})  # type: ignore[arg-type]
    day = conform_payments(raw_df, by_date, inspect_source(raw_df, by_date, 6), "Europe/Berlin").first()
    # A date is 00:00 there: 2024-01-02 00:00 CET (+01:00) is 2024-01-01 23:00Z.
    assert day is not None and day["payment_date"] == datetime(2024, 1, 1, 23)


def test_iso_strings_with_and_without_offsets(spark: SparkSession) -> None:
    schema = schema_of(T.StringType(), T.StringType(), T.StringType())
    rows = [
        ("u", "p1", "2024-01-05T10:00:00Z", "12.34"),
        ("u", "p2", "2024-01-05T10:00:00+02:00", "1"),
        ("u", "p3", "2024-01-05 10:00:00", "0.5"),  # no offset: New York wall clock (EST, -05:00)
        ("u", "p4", "yesterday", "1"),
        ("u", "p5", "2024-01-05T10:00:00Z", "twelve"),
    ]
    raw_df = spark.createDataFrame(rows, schema)
    conformed = conform_payments(raw_df, SOURCE, inspect_source(raw_df, SOURCE, 2), "America/New_York")
    got = {
        r["payment_id"]: (r["payment_date"], r["payment_amount"], r["outcome"])
        for r in with_outcome(conformed, False).collect()
    }
    assert got == {
        "p1": (datetime(2024, 1, 5, 10), Decimal("12.34"), "valid"),
        "p2": (datetime(2024, 1, 5, 8), Decimal("1.00"), "valid"),
        "p3": (datetime(2024, 1, 5, 15), Decimal("0.50"), "valid"),
        "p4": (None, Decimal("1.00"), "invalid_payment_date"),
        "p5": (datetime(2024, 1, 5, 10), None, "invalid_amount"),
    }


def test_schema_is_checked_before_reading_data(spark: SparkSession) -> None:
    renamed = SourceConfig(format="parquet", path="/unused", columns={"payment_amount": "amount"})  # type: ignore[arg-type]
    raw_df = spark.createDataFrame([], DOUBLE_SCHEMA)
    with pytest.raises(SourceSchemaError, match=r"'amount' \(for payment_amount\) is missing"):
        inspect_source(raw_df, renamed, 6)
    bad = schema_of(T.StringType(), T.TimestampType(), T.BooleanType())
    with pytest.raises(SourceSchemaError, match=r"'payment_amount' has type boolean, expected decimal"):
        inspect_source(spark.createDataFrame([], bad), SOURCE, 6)
    nested = schema_of(T.ArrayType(T.StringType()), T.TimestampType(), T.DoubleType())
    with pytest.raises(SourceSchemaError, match=r"'user_id' has type array<string>, expected string or integer"):
        inspect_source(spark.createDataFrame([], nested), SOURCE, 6)
