"""Tests of the reference implementation itself, on tiny data whose expected values are worked out by hand.

Every expected number below is derived in the comments next to it, not copied from a run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from chispa import assert_df_equality
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)
from reference_rfm import OUTPUT_COLUMNS, reference_calendar, reference_history

NY = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def payments_schema(user_type: DataType, scale: int) -> StructType:
    return StructType(
        [
            StructField("user_id", user_type, False),
            StructField("payment_id", StringType(), False),
            StructField("payment_date", TimestampType(), False),
            StructField("payment_amount", DecimalType(10, scale), False),
        ]
    )


def history_schema(user_type: DataType, scale: int) -> StructType:
    types = [
        DateType(),
        TimestampType(),
        BooleanType(),
        user_type,
        TimestampType(),
        DoubleType(),
        LongType(),
        DecimalType(38, scale),
        DoubleType(),
        DoubleType(),
        DoubleType(),
        IntegerType(),
        IntegerType(),
        IntegerType(),
        StringType(),
    ]
    return StructType([StructField(name, t, True) for name, t in zip(OUTPUT_COLUMNS, types, strict=True)])


def assert_history(spark, actual, expected_rows, user_type: DataType | None = None, scale: int = 2) -> None:
    """Exact comparison: column names, order and types, then every value (doubles compared exactly)."""
    schema = history_schema(user_type or StringType(), scale)
    assert actual.columns == OUTPUT_COLUMNS
    assert [f.dataType for f in actual.schema.fields] == [f.dataType for f in schema.fields]
    expected = spark.createDataFrame(expected_rows, schema)
    assert_df_equality(actual, expected, ignore_nullable=True, ignore_row_order=True)


def row(snapshot, cutoff, final, user, last, recency, freq, money, pcts, scores, segment) -> tuple:
    """One expected history row; `pcts` = (R, F, M) percentiles, `scores` = (R, F, M) scores."""
    return (snapshot, cutoff, final, user, last, recency, freq, Decimal(money), *pcts, *scores, segment)


# --------------------------------------------------------------------------------------------------------
# Calendar, pure Python
# --------------------------------------------------------------------------------------------------------


def test_calendar_month_closed_and_open_periods():
    cal = reference_calendar("month", "UTC", utc(2024, 3, 15, 12), utc(2024, 1, 31, 23, 59))
    assert cal == [
        (date(2024, 1, 31), utc(2024, 2, 1), True),
        (date(2024, 2, 29), utc(2024, 3, 1), True),  # leap year: last day of February is the 29th
        (date(2024, 3, 31), utc(2024, 3, 15, 12), False),  # open period: cutoff is as_of
    ]


def test_calendar_as_of_exactly_on_a_boundary_opens_the_new_period():
    # as_of = 2024-03-01 00:00: February has closed (period_end == as_of), and March is the open period,
    # with the same cutoff instant as February's.
    cal = reference_calendar("month", "UTC", utc(2024, 3, 1), utc(2024, 2, 10))
    assert cal == [
        (date(2024, 2, 29), utc(2024, 3, 1), True),
        (date(2024, 3, 31), utc(2024, 3, 1), False),
    ]


def test_calendar_week_in_new_york_across_dst():
    # DST starts Sunday 2024-03-10 at 02:00 EST (-05:00) -> 03:00 EDT (-04:00).
    # First payment 2024-03-04 04:30Z = Sunday 2024-03-03 23:30 EST -> ISO week Mon 02-26 .. Sun 03-03.
    # Boundaries: Mon 03-04 00:00 EST = 05:00Z; Mon 03-11 00:00 EDT = 04:00Z (a 167-hour week).
    # as_of 2024-03-13 16:00Z = Wed 12:00 EDT -> open week Mon 03-11 .. Sun 03-17.
    cal = reference_calendar("week", "America/New_York", utc(2024, 3, 13, 16), utc(2024, 3, 4, 4, 30))
    assert cal == [
        (date(2024, 3, 3), utc(2024, 3, 4, 5), True),
        (date(2024, 3, 10), utc(2024, 3, 11, 4), True),
        (date(2024, 3, 17), utc(2024, 3, 13, 16), False),
    ]


def test_calendar_quarter_and_periods_start():
    # periods_start 2023-08-20 lies in Q3 2023 (Jul..Sep); it wins over the earlier first payment.
    # as_of 2024-01-01 00:00 in Europe/Berlin (= 2023-12-31 23:00Z) is exactly the Q1 2024 boundary.
    as_of = datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Berlin"))
    cal = reference_calendar("quarter", "Europe/Berlin", as_of, utc(2022, 5, 1), periods_start=date(2023, 8, 20))
    assert cal == [
        (date(2023, 9, 30), utc(2023, 9, 30, 22), True),  # Oct 1 00:00 CEST (+02:00)
        (date(2023, 12, 31), utc(2023, 12, 31, 23), True),  # Jan 1 00:00 CET (+01:00)
        (date(2024, 3, 31), utc(2023, 12, 31, 23), False),
    ]


def test_calendar_day_grain_and_degenerate_inputs():
    # Payment at 23:00 local on Mar 1 in New York (= 04:00Z Mar 2) is in the local day Mar 1.
    as_of = datetime(2024, 3, 2, 6, tzinfo=NY)
    cal = reference_calendar("day", "America/New_York", as_of, utc(2024, 3, 2, 4))
    assert cal == [
        (date(2024, 3, 1), utc(2024, 3, 2, 5), True),  # Mar 2 00:00 EST = 05:00Z
        (date(2024, 3, 2), utc(2024, 3, 2, 11), False),  # as_of 06:00 EST = 11:00Z
    ]
    assert reference_calendar("day", "UTC", utc(2024, 1, 1), None) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        reference_calendar("day", "UTC", datetime(2024, 1, 1), None)
    with pytest.raises(ValueError, match="grain"):
        reference_calendar("year", "UTC", utc(2024, 1, 1), None)


# --------------------------------------------------------------------------------------------------------
# History, Spark
# --------------------------------------------------------------------------------------------------------

THREE_USERS = [
    ("u1", "p1", utc(2024, 1, 5, 10), Decimal("10.00")),
    ("u1", "p2", utc(2024, 2, 1, 0, 0), Decimal("5.50")),  # exactly 00:00 on Feb 1st: belongs to February
    ("u2", "p3", utc(2024, 1, 20), Decimal("20.00")),
    ("u3", "p4", utc(2024, 1, 31, 23, 59, 59), Decimal("7.25")),
    ("u3", "p5", utc(2024, 2, 10), Decimal("1.00")),
    ("u2", "p6", utc(2024, 2, 20), Decimal("100.00")),  # after as_of: not visible yet
]
THREE_USERS_AS_OF = utc(2024, 2, 15, 12)

JAN, JAN_CUTOFF = date(2024, 1, 31), utc(2024, 2, 1)
FEB, FEB_CUTOFF = date(2024, 2, 29), THREE_USERS_AS_OF

# January (cutoff Feb 1 00:00; p2 at exactly the cutoff is excluded): one payment each.
#   u1: last Jan 5 10:00 -> 26 days 14 h = 638 h; u2: Jan 20 00:00 -> 12 days; u3: Jan 31 23:59:59 -> 1 s.
#   recency DESC: u1 (26.58) rank 1 -> 0.0, u2 (12) rank 2 -> 1/2, u3 rank 3 -> 1.0
#   frequency: all 1, a three-way tie sharing rank 1 -> 0.0 for everyone -> F score 1
#   monetary ASC: u3 7.25 -> 0.0, u1 10.00 -> 0.5, u2 20.00 -> 1.0
#   R scores: 0.0 -> 1, 0.5 -> 3 (>= 0.4), 1.0 -> 5; segments (R,F): (1,1) Hibernating,
#   (3,1) About to Sleep, (5,1) New Customers.
# February (open; cutoff = as_of Feb 15 12:00; p6 on Feb 20 is after as_of):
#   u1: p1+p2, last Feb 1 00:00 -> 14.5 days, freq 2, 15.50
#   u2: p3, last Jan 20 00:00 -> 11 days left in Jan + 14.5 days = 26.5 days, freq 1, 20.00
#   u3: p4+p5, last Feb 10 00:00 -> 5.5 days, freq 2, 8.25
#   recency DESC: u2 0.0, u1 0.5, u3 1.0 -> R 1, 3, 5
#   frequency ASC: u2 (1) -> 0.0; u1, u3 tie at 2 -> shared rank 2 -> 0.5 -> F 1, 3, 3
#   monetary ASC: u3 8.25 -> 0.0, u1 15.50 -> 0.5, u2 20.00 -> 1.0 -> M 1, 3, 5
#   segments: u2 (1,1) Hibernating, u1 (3,3) Need Attention, u3 (5,3) Potential Loyalists.
JAN_ROWS = [
    row(JAN, JAN_CUTOFF, True, "u1", utc(2024, 1, 5, 10), 638 / 24, 1, "10.00", (0.0, 0.0, 0.5), (1, 1, 3),
        "Hibernating"),
    row(JAN, JAN_CUTOFF, True, "u2", utc(2024, 1, 20), 12.0, 1, "20.00", (0.5, 0.0, 1.0), (3, 1, 5),
        "About to Sleep"),
    row(JAN, JAN_CUTOFF, True, "u3", utc(2024, 1, 31, 23, 59, 59), 1 / 86400, 1, "7.25", (1.0, 0.0, 0.0),
        (5, 1, 1), "New Customers"),
]  # fmt: skip
FEB_ROWS = [
    row(FEB, FEB_CUTOFF, False, "u1", utc(2024, 2, 1), 14.5, 2, "15.50", (0.5, 0.5, 0.5), (3, 3, 3),
        "Need Attention"),
    row(FEB, FEB_CUTOFF, False, "u2", utc(2024, 1, 20), 26.5, 1, "20.00", (0.0, 0.0, 1.0), (1, 1, 5),
        "Hibernating"),
    row(FEB, FEB_CUTOFF, False, "u3", utc(2024, 2, 10), 5.5, 2, "8.25", (1.0, 0.5, 0.0), (5, 3, 1),
        "Potential Loyalists"),
]  # fmt: skip


@pytest.fixture(scope="module")
def three_users(spark):
    return spark.createDataFrame(THREE_USERS, payments_schema(StringType(), 2))


def test_three_users_two_months(spark, three_users):
    actual = reference_history(spark, three_users, grain="month", timezone="UTC", as_of=THREE_USERS_AS_OF)
    assert_history(spark, actual, JAN_ROWS + FEB_ROWS)


def test_periods_start_limits_snapshots_but_earlier_payments_still_count(spark, three_users):
    # Only February is written, but January's payments (p1, p3, p4) still count in it: same rows as above.
    actual = reference_history(
        spark,
        three_users,
        grain="month",
        timezone="UTC",
        as_of=THREE_USERS_AS_OF,
        periods_start=date(2024, 2, 10),
    )
    assert_history(spark, actual, FEB_ROWS)


def test_custom_thresholds_and_segment_matrix(spark, three_users):
    # Thresholds (0.5, 0.6, 0.7, 0.9): percentile 0.0 -> 1, 0.5 -> 2 (>= 0.5, < 0.6), 1.0 -> 5.
    # Matrix: cell "5,1" is "Fresh", the other 24 cells are "Other".
    # January's percentiles are those of JAN_ROWS (same cutoff, same payments):
    #   u1 R 0.0 F 0.0 M 0.5 -> (1, 1, 2) Other; u2 R 0.5 F 0.0 M 1.0 -> (2, 1, 5) Other;
    #   u3 R 1.0 F 0.0 M 0.0 -> (5, 1, 1) Fresh.
    others = [f"{r},{f}" for r in range(1, 6) for f in range(1, 6) if (r, f) != (5, 1)]
    segments = {"Fresh": ["5,1"], "Other": others}
    actual = reference_history(
        spark,
        three_users,
        grain="month",
        timezone="UTC",
        as_of=utc(2024, 2, 1, 0, 0, 1),  # one second into February: January final, February open
        thresholds=(0.5, 0.6, 0.7, 0.9),
        segments=segments,
    ).where("snapshot_date = DATE'2024-01-31'")
    assert_history(
        spark,
        actual,
        [
            (*JAN_ROWS[0][:11], 1, 1, 2, "Other"),
            (*JAN_ROWS[1][:11], 2, 1, 5, "Other"),
            (*JAN_ROWS[2][:11], 5, 1, 1, "Fresh"),
        ],
    )


def test_single_user_integer_ids_day_grain(spark):
    # One user (BIGINT id 42), one payment 2024-03-10 08:00Z of 3.5 (DECIMAL(10,1)); as_of 2024-03-11 06:00Z.
    # Day snapshots: Mar 10 (cutoff Mar 11 00:00, final) -> recency 16 h = 2/3 day;
    #                Mar 11 (cutoff = as_of, open)       -> recency 22 h = 22/24 day.
    # A snapshot with a single user: every PERCENT_RANK is 0.0 -> scores 1, 1, 1 -> (1,1) Hibernating.
    payments = spark.createDataFrame([(42, "p1", utc(2024, 3, 10, 8), Decimal("3.5"))], payments_schema(LongType(), 1))
    actual = reference_history(spark, payments, grain="day", timezone="UTC", as_of=utc(2024, 3, 11, 6))
    last = utc(2024, 3, 10, 8)
    expected = [
        row(date(2024, 3, 10), utc(2024, 3, 11), True, 42, last, 16 / 24, 1, "3.5", (0.0,) * 3, (1,) * 3,
            "Hibernating"),
        row(date(2024, 3, 11), utc(2024, 3, 11, 6), False, 42, last, 22 / 24, 1, "3.5", (0.0,) * 3, (1,) * 3,
            "Hibernating"),
    ]  # fmt: skip
    assert_history(spark, actual, expected, user_type=LongType(), scale=1)


def test_weekly_grain_new_york_across_dst(spark):
    # Week boundaries as in test_calendar_week_in_new_york_across_dst: 03-04 05:00Z, 03-11 04:00Z.
    # a1 2024-03-11 03:30Z = Sun 03-10 23:30 EDT -> week ending 03-10 (a UTC calendar would say Monday).
    # b1 2024-03-04 04:30Z = Sun 03-03 23:30 EST -> week ending 03-03.
    # b2 2024-03-11 04:00Z = Mon 03-11 00:00 EDT exactly -> week ending 03-17.
    payments = spark.createDataFrame(
        [
            ("a", "a1", utc(2024, 3, 11, 3, 30), Decimal("5.00")),
            ("b", "b1", utc(2024, 3, 4, 4, 30), Decimal("2.00")),
            ("b", "b2", utc(2024, 3, 11, 4), Decimal("3.00")),
        ],
        payments_schema(StringType(), 2),
    )
    as_of = datetime(2024, 3, 13, 12, tzinfo=NY)  # = 16:00Z
    actual = reference_history(spark, payments, grain="week", timezone="America/New_York", as_of=as_of)
    w1, c1 = date(2024, 3, 3), utc(2024, 3, 4, 5)
    w2, c2 = date(2024, 3, 10), utc(2024, 3, 11, 4)
    w3, c3 = date(2024, 3, 17), utc(2024, 3, 13, 16)
    # w1: only b (b1 04:30Z < 05:00Z), recency 30 min = 1/48 day; alone -> 0.0s -> Hibernating.
    # w2 (cutoff 04:00Z; b2 at exactly the cutoff is excluded):
    #   a: a1 03:30Z -> 30 min = 1/48 day; b: b1 03-04 04:30Z -> 7 days - 30 min = 167.5 h = 167.5/24 day
    #   recency DESC: b 0.0, a 1.0; frequency tie (1, 1) -> 0.0, 0.0; monetary ASC: b 2.00 -> 0.0, a 5.00 -> 1.0
    #   a (5,1) New Customers; b (1,1) Hibernating.
    # w3 (cutoff as_of 03-13 16:00Z):
    #   a: last 03-11 03:30Z -> 2 days 12.5 h = 60.5/24 day, freq 1, 5.00
    #   b: last 03-11 04:00Z -> 2 days 12 h = 2.5 days, freq 2, 2.00 + 3.00 = 5.00 (ties with a)
    #   recency DESC: a 0.0, b 1.0; frequency ASC: a 0.0, b 1.0; monetary tie -> 0.0, 0.0
    #   a (1,1) Hibernating; b (5,5) Champions.
    expected = [
        row(w1, c1, True, "b", utc(2024, 3, 4, 4, 30), 1 / 48, 1, "2.00", (0.0, 0.0, 0.0), (1, 1, 1),
            "Hibernating"),
        row(w2, c2, True, "a", utc(2024, 3, 11, 3, 30), 1 / 48, 1, "5.00", (1.0, 0.0, 1.0), (5, 1, 5),
            "New Customers"),
        row(w2, c2, True, "b", utc(2024, 3, 4, 4, 30), 167.5 / 24, 1, "2.00", (0.0, 0.0, 0.0), (1, 1, 1),
            "Hibernating"),
        row(w3, c3, False, "a", utc(2024, 3, 11, 3, 30), 60.5 / 24, 1, "5.00", (0.0, 0.0, 0.0), (1, 1, 1),
            "Hibernating"),
        row(w3, c3, False, "b", utc(2024, 3, 11, 4), 2.5, 2, "5.00", (1.0, 1.0, 0.0), (5, 5, 1),
            "Champions"),
    ]  # fmt: skip
    assert_history(spark, actual, expected)


def test_as_of_exactly_on_a_month_boundary(spark):
    # as_of 2024-03-01 00:00Z: January and February are final, March is open with cutoff = as_of, so
    # February and March see the same payments (u1's payment at exactly as_of is in neither).
    payments = spark.createDataFrame(
        [
            ("u1", "p1", utc(2024, 1, 15), Decimal("1.00")),
            ("u2", "p2", utc(2024, 2, 29, 12), Decimal("2.00")),
            ("u1", "p3", utc(2024, 3, 1), Decimal("4.00")),
        ],
        payments_schema(StringType(), 2),
    )
    actual = reference_history(spark, payments, grain="month", timezone="UTC", as_of=utc(2024, 3, 1))
    # Jan (cutoff Feb 1): u1 alone, Jan 15 -> Feb 1 = 17 days; all percentiles 0.0 -> Hibernating.
    # Feb (cutoff Mar 1): u1 Jan 15 -> Mar 1 = 17 + 29 (leap February) = 46 days; u2 Feb 29 12:00 -> 0.5 day.
    #   recency DESC: u1 0.0, u2 1.0; frequency tie -> 0.0; monetary ASC: u1 1.00 -> 0.0, u2 2.00 -> 1.0
    #   u1 (1,1) Hibernating; u2 (5,1) New Customers.  Mar: the same values and cutoff, but open.
    jan, feb, mar = date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)
    expected = [
        row(jan, utc(2024, 2, 1), True, "u1", utc(2024, 1, 15), 17.0, 1, "1.00", (0.0, 0.0, 0.0), (1, 1, 1),
            "Hibernating"),
    ]  # fmt: skip
    for snapshot_date, is_final in [(feb, True), (mar, False)]:
        cutoff = utc(2024, 3, 1)
        expected += [
            row(snapshot_date, cutoff, is_final, "u1", utc(2024, 1, 15), 46.0, 1, "1.00", (0.0, 0.0, 0.0),
                (1, 1, 1), "Hibernating"),
            row(snapshot_date, cutoff, is_final, "u2", utc(2024, 2, 29, 12), 0.5, 1, "2.00", (1.0, 0.0, 1.0),
                (5, 1, 5), "New Customers"),
        ]  # fmt: skip
    assert_history(spark, actual, expected)


def test_refuses_bad_configuration(spark, three_users):
    def run(**config):
        return reference_history(spark, three_users, grain="month", timezone="UTC", as_of=THREE_USERS_AS_OF, **config)

    with pytest.raises(ValueError, match="thresholds"):
        run(thresholds=(0.2, 0.1, 0.6, 0.8))
    with pytest.raises(ValueError, match="missing"):
        run(segments={"All": ["1,1"]})
    with pytest.raises(ValueError, match="doubled"):
        run(segments={"A": ["1,1"], "B": ["1,1"]})


def test_sanity_recency_fractions_are_what_the_comments_say():
    # Guard the hand arithmetic above with datetime arithmetic (independent of Spark).
    assert (utc(2024, 2, 1) - utc(2024, 1, 5, 10)) / timedelta(days=1) == 638 / 24
    assert (utc(2024, 2, 15, 12) - utc(2024, 1, 20)) / timedelta(days=1) == 26.5
    assert (utc(2024, 3, 11, 4) - utc(2024, 3, 4, 4, 30)) / timedelta(days=1) == 167.5 / 24
    assert (utc(2024, 3, 13, 16) - utc(2024, 3, 11, 3, 30)) / timedelta(days=1) == 60.5 / 24
    assert (utc(2024, 3, 1) - utc(2024, 1, 15)) / timedelta(days=1) == 46


def test_no_payment_before_as_of_gives_no_snapshots(spark, three_users):
    # Every payment is on or after as_of = 2024-01-01: no first period, so no snapshots at all (decision: an
    # empty result with the full schema, rather than an empty open snapshot).
    actual = reference_history(spark, three_users, grain="month", timezone="UTC", as_of=utc(2024, 1, 1))
    assert_history(spark, actual, [])
