"""An independent, deliberately plain reference implementation of SPEC.md sections 3, 4 and 5.1.

It exists only so tests can compare the real job's output with it, column by column. It imports nothing
from the `rfm` or `jobs` packages: the period calendar is built in plain Python with `zoneinfo`, and the
metrics are the SQL original's query (a range join of payments to snapshot cutoffs, GROUP BY, PERCENT_RANK,
CASE buckets, an R x F lookup) with the two SPEC fixes: `payment_date < cutoff_ts` (half-open periods,
snapshot_date = last day of the period) and `PARTITION BY snapshot_date` in every PERCENT_RANK.

Input is assumed clean (SPEC 2.1 validation already applied): no nulls, no duplicates, amounts DECIMAL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    BooleanType,
    ByteType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

GRAINS = ("day", "week", "month", "quarter")

DEFAULT_THRESHOLDS = (0.2, 0.4, 0.6, 0.8)

# SPEC 4.3, rows R (5 at the top), columns F 1..5.
DEFAULT_MATRIX_ROWS = {
    5: ["New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"],
    4: ["Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers", "Loyal Customers"],
    3: ["About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"],
    2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Cannot Lose Them"],
    1: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Cannot Lose Them"],
}

OUTPUT_COLUMNS = [
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
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------------------------------------
# Calendar (pure Python)
# --------------------------------------------------------------------------------------------------------


def _period_start(day: date, grain: str) -> date:
    """First local day of the period that contains the local day `day`."""
    if grain == "day":
        return day
    if grain == "week":  # ISO week: Monday .. Sunday
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    if grain == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    raise ValueError(f"unknown grain {grain!r}; expected one of {GRAINS}")


def _next_period_start(start: date, grain: str) -> date:
    if grain == "day":
        return start + timedelta(days=1)
    if grain == "week":
        return start + timedelta(days=7)
    months = {"month": 1, "quarter": 3}[grain]
    month_index = start.year * 12 + (start.month - 1) + months
    return date(month_index // 12, month_index % 12 + 1, 1)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant (in UTC) of 00:00 local time on `day`.

    zoneinfo with fold=0 gives exactly the SPEC 3.2 rule for wall-clock times: a skipped time moves forward
    (to the instant of the DST jump), a repeated time takes the earlier offset.
    """
    return datetime.combine(day, time(0, 0), tzinfo=tz).astimezone(UTC)


def _require_aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def reference_calendar(
    grain: str,
    timezone: str,
    as_of: datetime,
    first_payment: datetime | None,
    periods_start: date | None = None,
) -> list[tuple[date, datetime, bool]]:
    """(snapshot_date, cutoff_ts, is_final) for every snapshot a full refresh writes (SPEC 3.1-3.3).

    `first_payment` is the earliest payment instant before `as_of` (None when there is none). Snapshots run
    from the period containing `periods_start` if given, else the one containing `first_payment`, up to and
    including the open period (the one containing `as_of`). `cutoff_ts` is returned as an aware UTC datetime.
    """
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}; expected one of {GRAINS}")
    _require_aware("as_of", as_of)
    tz = ZoneInfo(timezone)
    as_of_utc = as_of.astimezone(UTC)

    if periods_start is not None:
        first_day = periods_start
    elif first_payment is not None:
        _require_aware("first_payment", first_payment)
        if first_payment >= as_of:
            raise ValueError(f"first_payment {first_payment} must be before as_of {as_of}")
        first_day = first_payment.astimezone(tz).date()
    else:
        return []  # no payment before as_of and no explicit start: nothing to snapshot

    open_start = _period_start(as_of_utc.astimezone(tz).date(), grain)
    calendar = []
    start = _period_start(first_day, grain)
    while start <= open_start:
        next_start = _next_period_start(start, grain)
        period_end = _local_midnight(next_start, tz)
        snapshot_date = next_start - timedelta(days=1)
        if period_end <= as_of_utc:
            calendar.append((snapshot_date, period_end, True))
        else:
            calendar.append((snapshot_date, as_of_utc, False))
        start = next_start
    # Only the period containing as_of can be open; when as_of is exactly a boundary it is the new period.
    assert all(is_final for _, _, is_final in calendar[:-1])
    return calendar


# --------------------------------------------------------------------------------------------------------
# History (Spark SQL)
# --------------------------------------------------------------------------------------------------------


def _segment_cells(segments: dict[str, list[str]] | None) -> list[tuple[int, int, str]]:
    """(r, f, segment) for all 25 cells, refusing a matrix with a missing or doubled cell."""
    if segments is None:
        return [(r, f, row[f - 1]) for r, row in DEFAULT_MATRIX_ROWS.items() for f in range(1, 6)]
    cells: dict[tuple[int, int], str] = {}
    for name, cell_list in segments.items():
        for cell in cell_list:
            r_text, f_text = cell.split(",")
            key = (int(r_text), int(f_text))
            if key in cells:
                raise ValueError(f"segment cell {cell!r} is doubled ({cells[key]!r} and {name!r})")
            cells[key] = name
    expected = {(r, f) for r in range(1, 6) for f in range(1, 6)}
    if set(cells) != expected:
        missing = sorted(expected - set(cells))
        extra = sorted(set(cells) - expected)
        raise ValueError(f"segment matrix must cover 1..5 x 1..5 exactly; missing {missing}, invalid {extra}")
    return [(r, f, cells[(r, f)]) for r, f in sorted(cells)]


def _micros(instant: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, in exact integer arithmetic."""
    return (instant - _EPOCH) // timedelta(microseconds=1)


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def reference_history(
    spark: SparkSession,
    payments_df: DataFrame,
    *,
    grain: str,
    timezone: str,
    as_of: datetime,
    thresholds: tuple[float, float, float, float] = DEFAULT_THRESHOLDS,
    segments: dict[str, list[str]] | None = None,
    periods_start: date | None = None,
) -> DataFrame:
    """The full history table (SPEC 5.1 columns, in order) that a full refresh at `as_of` would write."""
    _require_aware("as_of", as_of)
    t1, t2, t3, t4 = (float(t) for t in thresholds)
    if not 0.0 < t1 < t2 < t3 < t4 < 1.0:
        raise ValueError(f"thresholds must be four ascending values in (0, 1), got {thresholds!r}")
    cells = _segment_cells(segments)

    fields = {f.name: f.dataType for f in payments_df.schema.fields}
    if not isinstance(fields.get("payment_amount"), DecimalType):
        raise TypeError(f"payment_amount must be DECIMAL, got {fields.get('payment_amount')}")
    if not isinstance(fields.get("payment_date"), TimestampType):
        raise TypeError(f"payment_date must be TIMESTAMP, got {fields.get('payment_date')}")
    scale = fields["payment_amount"].scale
    if isinstance(fields.get("user_id"), (ByteType, ShortType, IntegerType, LongType)):
        user_id_expr = "CAST(user_id AS BIGINT)"  # integer ids come out as BIGINT
    elif isinstance(fields.get("user_id"), StringType):
        user_id_expr = "user_id"
    else:
        raise TypeError(f"user_id must be STRING or an integer type, got {fields.get('user_id')}")

    suffix = uuid.uuid4().hex[:12]
    payments_view = f"ref_payments_{suffix}"
    calendar_view = f"ref_calendar_{suffix}"
    matrix_view = f"ref_segment_matrix_{suffix}"

    payments_df.select("user_id", "payment_id", "payment_date", "payment_amount").createOrReplaceTempView(payments_view)

    as_of_micros = _micros(as_of)
    [first_row] = spark.sql(
        f"SELECT unix_micros(MIN(payment_date)) AS first_micros FROM {payments_view} "
        f"WHERE payment_date < timestamp_micros({as_of_micros})"
    ).collect()
    first_micros = first_row["first_micros"]
    first_payment = None if first_micros is None else _from_micros(first_micros)
    calendar = reference_calendar(grain, timezone, as_of, first_payment, periods_start)

    # Timestamps cross into Spark as epoch microseconds: no dependence on the Python process's time zone.
    spark.createDataFrame(
        [(snapshot_date, _micros(cutoff), is_final) for snapshot_date, cutoff, is_final in calendar],
        StructType(
            [
                StructField("snapshot_date", DateType(), False),
                StructField("cutoff_micros", LongType(), False),
                StructField("is_final", BooleanType(), False),
            ]
        ),
    ).createOrReplaceTempView(calendar_view)
    spark.createDataFrame(
        cells,
        StructType(
            [
                StructField("r", IntegerType(), False),
                StructField("f", IntegerType(), False),
                StructField("segment", StringType(), False),
            ]
        ),
    ).createOrReplaceTempView(matrix_view)

    return spark.sql(
        f"""
        WITH snapshots AS (
            SELECT snapshot_date, timestamp_micros(cutoff_micros) AS cutoff_ts, is_final
            FROM {calendar_view}
        ),
        payments AS (
            SELECT {user_id_expr} AS user_id, payment_id, payment_date, payment_amount
            FROM {payments_view}
        ),
        -- the range join: every snapshot sees every payment strictly before its cutoff
        payments_per_snapshot AS (
            SELECT s.snapshot_date, s.cutoff_ts, s.is_final,
                   p.user_id, p.payment_id, p.payment_date, p.payment_amount
            FROM snapshots s
            JOIN payments p ON p.payment_date < s.cutoff_ts
        ),
        metrics AS (
            SELECT snapshot_date, cutoff_ts, is_final, user_id,
                   MAX(payment_date) AS max_payment_date,
                   COUNT(DISTINCT payment_id) AS frequency,
                   CAST(SUM(payment_amount) AS DECIMAL(38, {scale})) AS monetary
            FROM payments_per_snapshot
            GROUP BY snapshot_date, cutoff_ts, is_final, user_id
        ),
        with_recency AS (
            SELECT *,
                   CAST(unix_micros(cutoff_ts) - unix_micros(max_payment_date) AS DOUBLE)
                       / 86400000000.0D AS recency_days
            FROM metrics
        ),
        percentiles AS (
            SELECT *,
                   PERCENT_RANK() OVER (PARTITION BY snapshot_date ORDER BY recency_days DESC)
                       AS recency_percentile,
                   PERCENT_RANK() OVER (PARTITION BY snapshot_date ORDER BY frequency ASC)
                       AS frequency_percentile,
                   PERCENT_RANK() OVER (PARTITION BY snapshot_date ORDER BY monetary ASC)
                       AS monetary_percentile
            FROM with_recency
        ),
        scores AS (
            SELECT *,
                   CASE WHEN recency_percentile >= {t4!r}D THEN 5
                        WHEN recency_percentile >= {t3!r}D THEN 4
                        WHEN recency_percentile >= {t2!r}D THEN 3
                        WHEN recency_percentile >= {t1!r}D THEN 2
                        ELSE 1 END AS recency_score,
                   CASE WHEN frequency_percentile >= {t4!r}D THEN 5
                        WHEN frequency_percentile >= {t3!r}D THEN 4
                        WHEN frequency_percentile >= {t2!r}D THEN 3
                        WHEN frequency_percentile >= {t1!r}D THEN 2
                        ELSE 1 END AS frequency_score,
                   CASE WHEN monetary_percentile >= {t4!r}D THEN 5
                        WHEN monetary_percentile >= {t3!r}D THEN 4
                        WHEN monetary_percentile >= {t2!r}D THEN 3
                        WHEN monetary_percentile >= {t1!r}D THEN 2
                        ELSE 1 END AS monetary_score
            FROM percentiles
        )
        SELECT s.snapshot_date, s.cutoff_ts, s.is_final, s.user_id, s.max_payment_date,
               s.recency_days, s.frequency, s.monetary,
               s.recency_percentile, s.frequency_percentile, s.monetary_percentile,
               s.recency_score, s.frequency_score, s.monetary_score,
               m.segment AS rfm_segment
        FROM scores s
        LEFT JOIN {matrix_view} m ON m.r = s.recency_score AND m.f = s.frequency_score
        ORDER BY s.snapshot_date, s.user_id
        """
    )
