"""Pure-Python tests of the period calendar (SPEC §3.1, §3.2). No Spark.

Every expected value is worked out by hand in a comment; none is computed with `rfm.periods`.
Reference points used throughout:
- 1970-01-01 is a Thursday, so the first ISO Monday after the epoch is 1970-01-05 (week index 0).
- 2024-01-01 is epoch day 19723: 54 years of 365 days (1970..2023) = 19710, plus 13 leap days
  (1972, 76, 80, 84, 88, 92, 96, 2000, 04, 08, 12, 16, 20). Check: 1704067200 s / 86400 = 19723.
- 2024 is a leap year: 2024-02-29 = 19723 + 31 (Jan) + 28 = 19782; 2024-03-01 = 19783.
- US DST 2024 (America/New_York): starts Sun 2024-03-10 02:00 EST -> 03:00 EDT; ends Sun 2024-11-03
  02:00 EDT -> 01:00 EST. EST = UTC-5, EDT = UTC-4.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from rfm.periods import (
    local_day_of,
    local_instant,
    local_midnight,
    parse_as_of,
    period_bounds,
    period_first_day,
    period_index,
    snapshot_date,
)

NY = "America/New_York"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- period_index / period_first_day / snapshot_date, per grain ------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(1970, 1, 1), 0),
        (date(1970, 1, 2), 1),
        (date(2000, 1, 1), 10957),  # 30 years * 365 + 7 leap days (1972..1996) = 10957
        (date(2024, 1, 1), 19723),
        (date(2024, 2, 29), 19782),  # 19723 + 31 + 28
        (date(2024, 3, 1), 19783),
        (date(2024, 12, 31), 20088),  # 19723 + 366 - 1
    ],
)
def test_day_index_counts_days_since_epoch(day: date, expected: int) -> None:
    assert period_index(day, "day") == expected


def test_day_period_is_the_day_itself() -> None:
    assert period_first_day(19782, "day") == date(2024, 2, 29)
    assert snapshot_date(19782, "day") == date(2024, 2, 29)
    assert snapshot_date(19783, "day") == date(2024, 3, 1)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(1970, 1, 5), 0),  # Monday: first ISO week after the epoch
        (date(1970, 1, 11), 0),  # Sunday of the same week
        (date(1970, 1, 12), 1),  # next Monday
        # 2024-03-04 (Monday) = 19783 + 3 = 19786; 19786 - 4 = 19782 = 7 * 2826.
        (date(2024, 3, 4), 2826),
        (date(2024, 3, 10), 2826),  # Sunday 19792: (19792 - 4) // 7 = 2826
        (date(2024, 3, 11), 2827),  # Monday
        # 2024-12-30 (Monday) = 20088 - 1 = 20087; 20087 - 4 = 20083 = 7 * 2869.
        (date(2024, 12, 30), 2869),
        (date(2025, 1, 5), 2869),  # Sunday, same ISO week (2025-W01) across the year boundary
    ],
)
def test_week_index_counts_iso_weeks_monday_to_sunday(day: date, expected: int) -> None:
    assert period_index(day, "week") == expected


def test_week_runs_monday_to_sunday() -> None:
    assert period_first_day(2826, "week") == date(2024, 3, 4)  # Monday
    assert snapshot_date(2826, "week") == date(2024, 3, 10)  # Sunday
    # A week spanning the new year is labelled by its Sunday, in the new year.
    assert period_first_day(2869, "week") == date(2024, 12, 30)
    assert snapshot_date(2869, "week") == date(2025, 1, 5)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(1970, 1, 1), 1970 * 12),  # 23640
        (date(2024, 3, 1), 24290),  # 2024 * 12 + 2
        (date(2024, 3, 31), 24290),
        (date(2024, 4, 1), 24291),
        (date(2024, 12, 31), 24299),  # 2024 * 12 + 11
        (date(2025, 1, 1), 24300),
    ],
)
def test_month_index(day: date, expected: int) -> None:
    assert period_index(day, "month") == expected


@pytest.mark.parametrize(
    ("index", "first_day", "last_day"),
    [
        (24290, date(2024, 3, 1), date(2024, 3, 31)),  # SPEC §3.1: March -> 2024-03-31
        (24291, date(2024, 4, 1), date(2024, 4, 30)),
        (24299, date(2024, 12, 1), date(2024, 12, 31)),  # December: next month is in the next year
        (24289, date(2024, 2, 1), date(2024, 2, 29)),  # 2024 leap year
        (24277, date(2023, 2, 1), date(2023, 2, 28)),  # 2023 * 12 + 1; not a leap year
        (24001, date(2000, 2, 1), date(2000, 2, 29)),  # 2000 * 12 + 1; divisible by 400: leap
        (25201, date(2100, 2, 1), date(2100, 2, 28)),  # 2100 * 12 + 1; divisible by 100 only: not leap
    ],
)
def test_month_first_and_last_day(index: int, first_day: date, last_day: date) -> None:
    assert period_first_day(index, "month") == first_day
    assert snapshot_date(index, "month") == last_day


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2024, 1, 1), 8096),  # 2024 * 4 + 0
        (date(2024, 3, 31), 8096),
        (date(2024, 4, 1), 8097),
        (date(2024, 9, 30), 8098),
        (date(2024, 10, 1), 8099),
        (date(2024, 12, 31), 8099),
        (date(2025, 1, 1), 8100),
    ],
)
def test_quarter_index(day: date, expected: int) -> None:
    assert period_index(day, "quarter") == expected


@pytest.mark.parametrize(
    ("index", "first_day", "last_day"),
    [
        (8096, date(2024, 1, 1), date(2024, 3, 31)),
        (8097, date(2024, 4, 1), date(2024, 6, 30)),
        (8098, date(2024, 7, 1), date(2024, 9, 30)),
        (8099, date(2024, 10, 1), date(2024, 12, 31)),
    ],
)
def test_quarter_first_and_last_day(index: int, first_day: date, last_day: date) -> None:
    assert period_first_day(index, "quarter") == first_day
    assert snapshot_date(index, "quarter") == last_day


@pytest.mark.parametrize("grain", ["year", "Month", ""])
def test_unknown_grain_raises(grain: str) -> None:
    with pytest.raises(ValueError, match="unknown grain"):
        period_index(date(2024, 1, 1), grain)
    with pytest.raises(ValueError, match="unknown grain"):
        period_first_day(1, grain)
    with pytest.raises(ValueError, match="unknown grain"):
        snapshot_date(1, grain)


# --- instants: local wall clock -> UTC -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("wall_clock", "zone", "expected"),
    [
        (datetime(2024, 1, 15, 12, 0), "UTC", utc(2024, 1, 15, 12, 0)),
        (datetime(2024, 1, 15, 12, 0), NY, utc(2024, 1, 15, 17, 0)),  # EST: 12:00 + 5 h
        (datetime(2024, 7, 4, 12, 0), NY, utc(2024, 7, 4, 16, 0)),  # EDT: 12:00 + 4 h
        (datetime(2024, 3, 1, 0, 0), "Asia/Kolkata", utc(2024, 2, 29, 18, 30)),  # UTC+05:30
    ],
)
def test_local_instant_ordinary_times(wall_clock: datetime, zone: str, expected: datetime) -> None:
    result = local_instant(wall_clock, zone)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_local_instant_in_dst_gap_moves_forward() -> None:
    # 02:30 on 2024-03-10 does not exist in New York; it moves forward by the 1 h gap to 03:30 EDT = 07:30Z.
    assert local_instant(datetime(2024, 3, 10, 2, 30), NY) == utc(2024, 3, 10, 7, 30)


def test_local_instant_in_dst_overlap_takes_earlier_offset() -> None:
    # 01:30 on 2024-11-03 happens twice: first in EDT (05:30Z), then in EST (06:30Z). The earlier one wins.
    assert local_instant(datetime(2024, 11, 3, 1, 30), NY) == utc(2024, 11, 3, 5, 30)
    # ...even when the caller's datetime says fold=1 (the second occurrence).
    assert local_instant(datetime(2024, 11, 3, 1, 30, fold=1), NY) == utc(2024, 11, 3, 5, 30)


def test_local_instant_refuses_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_instant(utc(2024, 1, 1), NY)


def test_local_midnight() -> None:
    assert local_midnight(date(2024, 3, 1), "UTC") == utc(2024, 3, 1)
    assert local_midnight(date(2024, 3, 10), NY) == utc(2024, 3, 10, 5, 0)  # the DST day starts in EST
    assert local_midnight(date(2024, 3, 11), NY) == utc(2024, 3, 11, 4, 0)  # the next day in EDT
    assert local_midnight(date(2024, 4, 1), "Asia/Tokyo") == utc(2024, 3, 31, 15, 0)  # UTC+9


def test_local_midnight_skipped_by_dst_moves_forward() -> None:
    # Brazil started DST at 00:00 on 2018-11-04 (00:00 -03 -> 01:00 -02): midnight did not exist that day,
    # so the day starts at 01:00 -02 = 03:00Z; the next midnight is 00:00 -02 = 02:00Z (a 23-hour day).
    assert local_midnight(date(2018, 11, 4), "America/Sao_Paulo") == utc(2018, 11, 4, 3, 0)
    # 2018-11-04 = 2018-01-01 (17532 = 48 * 365 + 12 leap days) + 307 days = 17839.
    start, end = period_bounds(17839, "day", "America/Sao_Paulo")
    assert (start, end) == (utc(2018, 11, 4, 3, 0), utc(2018, 11, 5, 2, 0))
    assert end - start == timedelta(hours=23)


def test_local_day_of() -> None:
    # 04:59Z on 1 March 2024 is 23:59 EST on 29 February in New York.
    assert local_day_of(utc(2024, 3, 1, 4, 59), NY) == date(2024, 2, 29)
    assert local_day_of(utc(2024, 3, 1, 5, 0), NY) == date(2024, 3, 1)
    assert local_day_of(utc(2024, 3, 1, 4, 59), "UTC") == date(2024, 3, 1)


# --- period_bounds ---------------------------------------------------------------------------------------


def test_month_bounds_utc_are_half_open_at_midnight_of_the_first() -> None:
    start, end = period_bounds(24290, "month", "UTC")  # March 2024
    assert (start, end) == (utc(2024, 3, 1), utc(2024, 4, 1))
    assert end - start == timedelta(days=31)


def test_month_bounds_in_a_zone_without_dst() -> None:
    # Asia/Kolkata is UTC+05:30 all year: 00:00 local = 18:30Z the day before.
    start, end = period_bounds(24290, "month", "Asia/Kolkata")
    assert (start, end) == (utc(2024, 2, 29, 18, 30), utc(2024, 3, 31, 18, 30))


def test_month_bounds_across_dst_start_lose_an_hour() -> None:
    # March 2024 in New York: 1 March 00:00 EST = 05:00Z; 1 April 00:00 EDT = 04:00Z; 31 days - 1 h.
    start, end = period_bounds(24290, "month", NY)
    assert (start, end) == (utc(2024, 3, 1, 5, 0), utc(2024, 4, 1, 4, 0))
    assert end - start == timedelta(days=31) - timedelta(hours=1)


def test_week_across_us_dst_start_lasts_167_hours() -> None:
    # Week 2826 = Mon 2024-03-04 .. Sun 2024-03-10, DST starting on its Sunday.
    # Start: Mon 03-04 00:00 EST = 05:00Z. End: Mon 03-11 00:00 EDT = 04:00Z. 7 * 24 - 1 = 167 h.
    start, end = period_bounds(2826, "week", NY)
    assert (start, end) == (utc(2024, 3, 4, 5, 0), utc(2024, 3, 11, 4, 0))
    assert end - start == timedelta(hours=167)


def test_week_across_us_dst_end_lasts_169_hours() -> None:
    # Week 2860 = 2869 - 9 = Mon 2024-10-28 .. Sun 2024-11-03 (12-30 minus 63 days is 10-28).
    # Start: 10-28 00:00 EDT = 04:00Z. End: Mon 11-04 00:00 EST = 05:00Z. 7 * 24 + 1 = 169 h.
    start, end = period_bounds(2860, "week", NY)
    assert (start, end) == (utc(2024, 10, 28, 4, 0), utc(2024, 11, 4, 5, 0))
    assert end - start == timedelta(hours=169)


def test_day_bounds_on_dst_day_lasts_23_hours() -> None:
    # 2024-03-10 = 19783 + 9 = 19792: 00:00 EST = 05:00Z to 03-11 00:00 EDT = 04:00Z.
    start, end = period_bounds(19792, "day", NY)
    assert (start, end) == (utc(2024, 3, 10, 5, 0), utc(2024, 3, 11, 4, 0))


def test_quarter_bounds_in_europe() -> None:
    # Q1 2024 in Berlin: 1 Jan 00:00 CET (+1) = 2023-12-31T23:00Z; 1 Apr 00:00 CEST (+2) = 03-31T22:00Z.
    start, end = period_bounds(8096, "quarter", "Europe/Berlin")
    assert (start, end) == (utc(2023, 12, 31, 23, 0), utc(2024, 3, 31, 22, 0))


def test_consecutive_periods_touch() -> None:
    # Half-open periods: one period's end is exactly the next one's start (no gap, no overlap).
    _, end_of_march = period_bounds(24290, "month", NY)
    start_of_april, _ = period_bounds(24291, "month", NY)
    assert end_of_march == start_of_april == utc(2024, 4, 1, 4, 0)


# --- parse_as_of -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        # A date alone is 00:00 local.
        ("2024-12-15", "UTC", utc(2024, 12, 15)),
        ("2024-12-15", NY, utc(2024, 12, 15, 5, 0)),  # EST
        ("2024-07-15", NY, utc(2024, 7, 15, 4, 0)),  # EDT
        ("2024-04-01", "Asia/Tokyo", utc(2024, 3, 31, 15, 0)),  # UTC+9
        ("2024-02-29", "UTC", utc(2024, 2, 29)),  # leap day is a valid date
        # Without an offset: wall clock in the zone.
        ("2024-12-15T06:30:00", NY, utc(2024, 12, 15, 11, 30)),  # 06:30 EST + 5 h
        ("2024-12-15T06:30:00", "UTC", utc(2024, 12, 15, 6, 30)),
        # With an offset or Z: the zone is irrelevant.
        ("2024-12-15T06:30:00+01:00", NY, utc(2024, 12, 15, 5, 30)),
        ("2024-12-15T06:30:00-08:00", NY, utc(2024, 12, 15, 14, 30)),
        ("2024-12-15T06:30:00Z", NY, utc(2024, 12, 15, 6, 30)),
        ("2024-12-15T06:30:00+00:00", NY, utc(2024, 12, 15, 6, 30)),
        # DST gap and overlap rules apply to wall-clock input too.
        ("2024-03-10T02:30:00", NY, utc(2024, 3, 10, 7, 30)),  # skipped: -> 03:30 EDT
        ("2024-11-03T01:30:00", NY, utc(2024, 11, 3, 5, 30)),  # twice: earlier, EDT
        # Surrounding whitespace (e.g. from a scheduler template) is ignored.
        ("  2024-12-15  ", "UTC", utc(2024, 12, 15)),
    ],
)
def test_parse_as_of(text: str, zone: str, expected: datetime) -> None:
    result = parse_as_of(text, zone)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_parse_as_of_converts_an_offset_input_to_utc() -> None:
    # 06:30 at +05:30 is 01:00Z; the result carries UTC, not the input's offset.
    result = parse_as_of("2024-12-15T06:30:00+05:30", "UTC")
    assert result == utc(2024, 12, 15, 1, 0)
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "",
        "2024-13-01",  # no month 13
        "2024-02-30",  # no 30 February
        "2023-02-29",  # 2023 is not a leap year
        "2024-12-15T25:00:00",
        "15/12/2024",
        "2024-12-15T06:30:00+25:00",  # offset out of range
        "now",
    ],
)
def test_parse_as_of_garbage_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="as-of"):
        parse_as_of(text, NY)
