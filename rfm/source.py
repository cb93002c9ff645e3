"""Reading the payments source and conforming it to the input contract (SPEC §2).

`read_source` returns a lazy DataFrame: nothing is read until an action. `conform_payments` checks the
schema (from metadata alone) and maps the configured columns to the canonical names, parsing values; a
value that does not parse becomes null in the parsed column while its original stays in `raw_*`, so that
validation can reject it with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm.config import SourceConfig

CANONICAL = ("user_id", "payment_id", "payment_date", "payment_amount")
INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
FLOATING = (T.FloatType, T.DoubleType)
# An ISO string that names its own offset is an instant; one without is wall-clock time (SPEC §2).
_HAS_OFFSET = r"(Z|[+-]\d{2}(:?\d{2})?)$"


class SourceSchemaError(ValueError):
    """The source lacks a column, or has a type that cannot be cast to the contract's type."""


@dataclass(frozen=True)
class SourceInfo:
    """What the output schema depends on, known from the source schema before any data is read."""

    user_id_type: T.DataType  # StringType or LongType
    money_scale: int


def read_source(spark: SparkSession, source: SourceConfig) -> DataFrame:
    if source.format == "table":
        assert source.table is not None
        return spark.read.table(source.table)
    reader = spark.read.format(source.format)
    if source.format == "csv":
        reader = reader.option("header", "true").option("inferSchema", "false")
    return reader.load(source.path)


def source_version(spark: SparkSession, source: SourceConfig) -> int | None:
    """The Delta version a run reads (recorded in commit metadata); None for non-Delta sources."""
    from delta.tables import DeltaTable

    if source.format == "delta":
        assert source.path is not None
        table = DeltaTable.forPath(spark, source.path)
    elif source.format == "table" and DeltaTable.isDeltaTable(spark, source.table or ""):
        table = DeltaTable.forName(spark, source.table or "")
    else:
        return None
    return int(table.history(1).select("version").first()[0])  # type: ignore[index]


def inspect_source(raw_df: DataFrame, source: SourceConfig, money_scale: int) -> SourceInfo:
    """Check the source schema against the contract; raises SourceSchemaError naming the column."""
    fields = {f.name: f.dataType for f in raw_df.schema.fields}
    names = source.columns.model_dump()
    for canonical in CANONICAL:
        name = names[canonical]
        if name not in fields:
            available = ", ".join(sorted(fields))
            raise SourceSchemaError(f"source column {name!r} (for {canonical}) is missing; the source has: {available}")
        dtype = fields[name]
        if not _accepts(canonical, dtype):
            raise SourceSchemaError(
                f"source column {name!r} has type {dtype.simpleString()}, expected {_EXPECTED[canonical]}"
            )
    user_type = fields[names["user_id"]]
    amount_type = fields[names["payment_amount"]]
    return SourceInfo(
        user_id_type=T.StringType() if isinstance(user_type, T.StringType) else T.LongType(),
        money_scale=amount_type.scale if isinstance(amount_type, T.DecimalType) else money_scale,
    )


_EXPECTED = {
    "user_id": "string or integer",
    "payment_id": "string or integer",
    "payment_date": "timestamp, timestamp_ntz, date, or an ISO 8601 string",
    "payment_amount": "decimal, double, float, integer, or a numeric string",
}


def _accepts(canonical: str, dtype: T.DataType) -> bool:
    if canonical in ("user_id", "payment_id"):
        return isinstance(dtype, (T.StringType, *INTEGRAL))
    if canonical == "payment_date":
        return isinstance(dtype, (T.TimestampType, T.TimestampNTZType, T.DateType, T.StringType))
    return isinstance(dtype, (T.DecimalType, *FLOATING, *INTEGRAL, T.StringType))


def conform_payments(raw_df: DataFrame, source: SourceConfig, info: SourceInfo, timezone: str) -> DataFrame:
    """Canonical columns, parsed, plus `raw_*` strings of the original values (for the rejects table)."""
    names = source.columns.model_dump()
    types = {f.name: f.dataType for f in raw_df.schema.fields}
    parsed = {
        "user_id": _parse_id(F.col(names["user_id"]), types[names["user_id"]]),
        "payment_id": _parse_id(F.col(names["payment_id"]), types[names["payment_id"]]),
        "payment_date": _parse_instant(F.col(names["payment_date"]), types[names["payment_date"]], timezone),
        "payment_amount": _parse_money(
            F.col(names["payment_amount"]), types[names["payment_amount"]], info.money_scale
        ),
    }
    raw = {f"raw_{c}": F.col(names[c]).cast("string") for c in CANONICAL}
    return raw_df.select(
        *[column.alias(name) for name, column in parsed.items()],
        *[column.alias(name) for name, column in raw.items()],
    )


def _parse_id(column: Column, dtype: T.DataType) -> Column:
    return column if isinstance(dtype, T.StringType) else column.cast("bigint")


def _parse_instant(column: Column, dtype: T.DataType, timezone: str) -> Column:
    # The session time zone is UTC (rfm.session), so a naive value cast to TIMESTAMP reads as UTC wall
    # clock; to_utc_timestamp then reinterprets that wall clock in the configured zone.
    if isinstance(dtype, T.TimestampType):
        return column
    if isinstance(dtype, (T.TimestampNTZType, T.DateType)):
        return F.to_utc_timestamp(column.cast("timestamp"), timezone)
    text = F.trim(column)
    as_timestamp = text.try_cast("timestamp")
    return F.when(text.rlike(_HAS_OFFSET), as_timestamp).otherwise(F.to_utc_timestamp(as_timestamp, timezone))


def _parse_money(column: Column, dtype: T.DataType, scale: int) -> Column:
    if isinstance(dtype, T.DecimalType):
        return column
    if isinstance(dtype, T.StringType):
        column = F.trim(column)
    # NaN and infinities have no decimal value: they become null here and are rejected as invalid_amount.
    return column.try_cast(T.DecimalType(38, scale))
