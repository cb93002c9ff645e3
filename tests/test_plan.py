"""Pure-Python tests of the run plan (SPEC §3.2, §3.3): which snapshots a run writes, and their cutoffs.

Expected snapshot dates and cutoffs are worked out by hand from the calendar (comments give the arithmetic).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime

import pytest

from rfm.plan import (
    GuardError,
    Mode,
    NoPaymentsError,
    PlanError,
    RunPlan,
    RunRequest,
    WrittenSnapshot,
    build_plan,
)

NY = "America/New_York"

Row = tuple[date, datetime, bool]  # (snapshot_date, cutoff_ts, is_final)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, 0, microsecond, tzinfo=UTC)


EARLIEST_JAN_15 = utc(2024, 1, 15, 8)


def plan_for(
    request: RunRequest,
    *,
    grain: str = "month",
    timezone: str = "UTC",
    periods_start: date | None = None,
    earliest_payment: datetime | None = EARLIEST_JAN_15,
    written: Mapping[date, WrittenSnapshot] | None = None,
) -> RunPlan:
    return build_plan(
        request,
        grain=grain,
        timezone=timezone,
        periods_start=periods_start,
        earliest_payment=earliest_payment,
        written=written or {},
    )


def rows(plan: RunPlan) -> list[Row]:
    return [(s.snapshot_date, s.cutoff_ts, s.is_final) for s in plan.snapshots]


def final(cutoff: datetime) -> WrittenSnapshot:
    return WrittenSnapshot(cutoff_ts=cutoff, is_final=True)


def open_(cutoff: datetime) -> WrittenSnapshot:
    return WrittenSnapshot(cutoff_ts=cutoff, is_final=False)


# History written by daily scheduled runs up to 2024-03-20 06:00Z (UTC, monthly grain).
HISTORY_TO_MAR_20 = {
    date(2024, 1, 31): final(utc(2024, 2, 1)),
    date(2024, 2, 29): final(utc(2024, 3, 1)),
    date(2024, 3, 31): open_(utc(2024, 3, 20, 6)),
}


# --- first run / full refresh ----------------------------------------------------------------------------


def test_first_run_covers_earliest_payment_period_to_open_period() -> None:
    as_of = utc(2024, 4, 10, 12)
    plan = plan_for(RunRequest(as_of), earliest_payment=utc(2024, 1, 15, 8))

    assert plan.mode is Mode.FULL
    assert plan.replaces_whole_table
    assert plan.as_of == as_of
    # Closed periods are cut at their end (00:00 of the next 1st); the open one (April) at as_of.
    assert rows(plan) == [
        (date(2024, 1, 31), utc(2024, 2, 1), True),
        (date(2024, 2, 29), utc(2024, 3, 1), True),  # leap year
        (date(2024, 3, 31), utc(2024, 4, 1), True),
        (date(2024, 4, 30), as_of, False),
    ]
    assert plan.snapshot_dates == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]


def test_first_run_with_payment_in_the_open_period_only() -> None:
    as_of = utc(2024, 4, 10, 12)
    plan = plan_for(RunRequest(as_of), earliest_payment=utc(2024, 4, 2))
    assert rows(plan) == [(date(2024, 4, 30), as_of, False)]


def test_as_of_exactly_at_boundary_opens_the_period_starting_there() -> None:
    # as_of = 2024-04-01 00:00Z: March closes (end == as_of) and April is the open period, cutoff = as_of.
    as_of = utc(2024, 4, 1)
    plan = plan_for(RunRequest(as_of), earliest_payment=utc(2024, 3, 5))
    assert rows(plan) == [
        (date(2024, 3, 31), utc(2024, 4, 1), True),
        (date(2024, 4, 30), utc(2024, 4, 1), False),
    ]


def test_as_of_just_before_boundary_keeps_the_period_open() -> None:
    as_of = utc(2024, 3, 31, 23, 59, 999_999)
    plan = plan_for(RunRequest(as_of), earliest_payment=utc(2024, 3, 5))
    assert rows(plan) == [(date(2024, 3, 31), as_of, False)]


def test_payment_at_period_start_belongs_to_the_new_period() -> None:
    # Half-open periods: 00:00 on 1 February is February's, so the first snapshot is February's.
    as_of = utc(2024, 3, 10)
    plan = plan_for(RunRequest(as_of), earliest_payment=utc(2024, 2, 1))
    assert plan.snapshot_dates == [date(2024, 2, 29), date(2024, 3, 31)]

    just_before = plan_for(RunRequest(as_of), earliest_payment=utc(2024, 1, 31, 23, 59, 999_999))
    assert just_before.snapshot_dates == [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)]


def test_payment_at_period_start_in_a_non_utc_zone() -> None:
    # New York: 1 February 00:00 EST = 05:00Z. 04:59Z is still 31 January there.
    as_of = utc(2024, 2, 10)
    on_boundary = plan_for(RunRequest(as_of), timezone=NY, earliest_payment=utc(2024, 2, 1, 5))
    assert on_boundary.snapshot_dates == [date(2024, 2, 29)]
    before = plan_for(RunRequest(as_of), timezone=NY, earliest_payment=utc(2024, 2, 1, 4, 59))
    assert before.snapshot_dates == [date(2024, 1, 31), date(2024, 2, 29)]
    # January in New York ends 1 February 00:00 EST = 05:00Z.
    assert rows(before)[0] == (date(2024, 1, 31), utc(2024, 2, 1, 5), True)


def test_periods_start_limits_snapshots() -> None:
    plan = plan_for(RunRequest(utc(2024, 4, 10)), earliest_payment=utc(2023, 6, 10), periods_start=date(2024, 2, 1))
    assert plan.snapshot_dates == [date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]


def test_periods_start_before_earliest_payment_does_not_add_empty_snapshots() -> None:
    plan = plan_for(RunRequest(utc(2024, 4, 10)), earliest_payment=utc(2024, 3, 2), periods_start=date(2020, 1, 1))
    assert plan.snapshot_dates == [date(2024, 3, 31), date(2024, 4, 30)]


def test_periods_start_after_open_period_is_a_plan_error() -> None:
    with pytest.raises(PlanError):
        plan_for(RunRequest(utc(2024, 4, 10)), earliest_payment=utc(2024, 1, 2), periods_start=date(2024, 6, 1))


def test_full_refresh_replaces_whole_table() -> None:
    as_of = utc(2024, 3, 25)
    plan = plan_for(RunRequest(as_of, full_refresh=True), earliest_payment=utc(2024, 1, 15), written=HISTORY_TO_MAR_20)
    assert plan.mode is Mode.FULL
    assert plan.replaces_whole_table
    assert rows(plan) == [
        (date(2024, 1, 31), utc(2024, 2, 1), True),
        (date(2024, 2, 29), utc(2024, 3, 1), True),
        (date(2024, 3, 31), as_of, False),
    ]


def test_full_refresh_starts_from_earliest_payment_not_from_written_history() -> None:
    # The table starts in January, but a payment from November 2023 is now visible: the refresh covers it.
    plan = plan_for(
        RunRequest(utc(2024, 3, 25), full_refresh=True), earliest_payment=utc(2023, 11, 3), written=HISTORY_TO_MAR_20
    )
    assert plan.snapshot_dates[:3] == [date(2023, 11, 30), date(2023, 12, 31), date(2024, 1, 31)]
    assert plan.snapshot_dates[-1] == date(2024, 3, 31)


def test_no_payment_raises_no_payments_error() -> None:
    with pytest.raises(NoPaymentsError):
        plan_for(RunRequest(utc(2024, 4, 10)), earliest_payment=None)
    with pytest.raises(NoPaymentsError):
        plan_for(RunRequest(utc(2024, 4, 10), full_refresh=True), earliest_payment=None, written=HISTORY_TO_MAR_20)


# --- scheduled runs --------------------------------------------------------------------------------------


def test_scheduled_run_within_open_period_rewrites_only_the_open_snapshot() -> None:
    as_of = utc(2024, 3, 21, 6)
    plan = plan_for(RunRequest(as_of), written=HISTORY_TO_MAR_20)
    assert plan.mode is Mode.SCHEDULED
    assert not plan.replaces_whole_table
    assert rows(plan) == [(date(2024, 3, 31), as_of, False)]


def test_scheduled_run_on_the_first_finalises_the_previous_month() -> None:
    as_of = utc(2024, 4, 1, 6)
    plan = plan_for(RunRequest(as_of), written=HISTORY_TO_MAR_20)
    assert rows(plan) == [
        (date(2024, 3, 31), utc(2024, 4, 1), True),
        (date(2024, 4, 30), as_of, False),
    ]


def test_scheduled_run_catches_up_after_missed_days() -> None:
    # Last run 20 March; next run 3 June: March, April, May are closed and not yet final.
    as_of = utc(2024, 6, 3, 6)
    plan = plan_for(RunRequest(as_of), written=HISTORY_TO_MAR_20)
    assert rows(plan) == [
        (date(2024, 3, 31), utc(2024, 4, 1), True),
        (date(2024, 4, 30), utc(2024, 5, 1), True),
        (date(2024, 5, 31), utc(2024, 6, 1), True),
        (date(2024, 6, 30), as_of, False),
    ]


def test_scheduled_run_when_newest_final_has_no_open_successor() -> None:
    # The last run was exactly at a boundary that finalised February but wrote no March yet.
    written = {date(2024, 1, 31): final(utc(2024, 2, 1)), date(2024, 2, 29): final(utc(2024, 3, 1))}
    as_of = utc(2024, 4, 2)
    plan = plan_for(RunRequest(as_of), written=written)
    assert rows(plan) == [
        (date(2024, 3, 31), utc(2024, 4, 1), True),
        (date(2024, 4, 30), as_of, False),
    ]


def test_scheduled_run_when_table_holds_only_an_open_snapshot() -> None:
    written = {date(2024, 3, 31): open_(utc(2024, 3, 20, 6))}
    same_period = plan_for(RunRequest(utc(2024, 3, 25)), written=written)
    assert rows(same_period) == [(date(2024, 3, 31), utc(2024, 3, 25), False)]

    next_period = plan_for(RunRequest(utc(2024, 4, 2)), written=written)
    assert next_period.mode is Mode.SCHEDULED
    assert rows(next_period) == [
        (date(2024, 3, 31), utc(2024, 4, 1), True),
        (date(2024, 4, 30), utc(2024, 4, 2), False),
    ]


def test_scheduled_run_does_not_go_back_to_earliest_payment() -> None:
    plan = plan_for(RunRequest(utc(2024, 3, 21)), earliest_payment=utc(2020, 1, 1), written=HISTORY_TO_MAR_20)
    assert plan.snapshot_dates == [date(2024, 3, 31)]


def test_scheduled_rerun_with_the_same_as_of_is_allowed() -> None:
    as_of = utc(2024, 3, 20, 6)  # == newest cutoff written
    plan = plan_for(RunRequest(as_of), written=HISTORY_TO_MAR_20)
    assert rows(plan) == [(date(2024, 3, 31), as_of, False)]


# --- --from / --to ---------------------------------------------------------------------------------------

# Written by scheduled runs up to 2024-06-09 06:00Z: January..May final, June open.
HISTORY_TO_JUN_9 = {
    date(2024, 1, 31): final(utc(2024, 2, 1)),
    date(2024, 2, 29): final(utc(2024, 3, 1)),
    date(2024, 3, 31): final(utc(2024, 4, 1)),
    date(2024, 4, 30): final(utc(2024, 5, 1)),
    date(2024, 5, 31): final(utc(2024, 6, 1)),
    date(2024, 6, 30): open_(utc(2024, 6, 9, 6)),
}
AS_OF_JUN_10 = utc(2024, 6, 10, 12)


def range_plan(date_from: date, date_to: date | None = None, as_of: datetime = AS_OF_JUN_10) -> RunPlan:
    return plan_for(RunRequest(as_of, date_from=date_from, date_to=date_to), written=HISTORY_TO_JUN_9)


def test_range_rewrites_chosen_closed_snapshots() -> None:
    plan = range_plan(date(2024, 2, 1), date(2024, 3, 31))
    assert plan.mode is Mode.RANGE
    assert not plan.replaces_whole_table
    assert rows(plan) == [
        (date(2024, 2, 29), utc(2024, 3, 1), True),
        (date(2024, 3, 31), utc(2024, 4, 1), True),
    ]


@pytest.mark.parametrize(
    ("date_from", "date_to", "expected"),
    [
        # Inclusive at both ends, on the literal snapshot dates.
        (date(2024, 2, 29), date(2024, 3, 31), [date(2024, 2, 29), date(2024, 3, 31)]),
        (date(2024, 3, 31), date(2024, 3, 31), [date(2024, 3, 31)]),
        # 2024-03-01 is after 02-29, and 04-30 is after 2024-04-29: only March.
        (date(2024, 3, 1), date(2024, 4, 29), [date(2024, 3, 31)]),
        # Mid-month dates: snapshot dates 01-31 and 02-29 lie within [01-15, 03-15].
        (date(2024, 1, 15), date(2024, 3, 15), [date(2024, 1, 31), date(2024, 2, 29)]),
    ],
)
def test_range_is_inclusive_on_literal_snapshot_dates(date_from: date, date_to: date, expected: list[date]) -> None:
    assert range_plan(date_from, date_to).snapshot_dates == expected


def test_range_to_defaults_to_the_open_snapshot() -> None:
    plan = range_plan(date(2024, 4, 1))
    assert rows(plan) == [
        (date(2024, 4, 30), utc(2024, 5, 1), True),
        (date(2024, 5, 31), utc(2024, 6, 1), True),
        (date(2024, 6, 30), AS_OF_JUN_10, False),
    ]


def test_range_to_is_clipped_to_the_open_snapshot() -> None:
    plan = range_plan(date(2024, 5, 1), date(2024, 12, 31))
    assert rows(plan) == [
        (date(2024, 5, 31), utc(2024, 6, 1), True),
        (date(2024, 6, 30), AS_OF_JUN_10, False),
    ]


@pytest.mark.parametrize(
    ("date_from", "date_to"),
    [
        (date(2024, 3, 5), date(2024, 3, 20)),  # no month ends inside
        (date(2024, 7, 1), None),  # after the open period's snapshot (06-30)
        (date(2024, 7, 1), date(2024, 9, 30)),  # entirely in the future
    ],
)
def test_empty_range_is_a_plan_error(date_from: date, date_to: date | None) -> None:
    with pytest.raises(PlanError):
        range_plan(date_from, date_to)


def test_to_before_from_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="before"):
        range_plan(date(2024, 4, 30), date(2024, 3, 31))


def test_range_respects_periods_start() -> None:
    plan = plan_for(
        RunRequest(AS_OF_JUN_10, date_from=date(2024, 1, 1), date_to=date(2024, 4, 30)),
        written=HISTORY_TO_JUN_9,
        periods_start=date(2024, 3, 1),
    )
    assert plan.snapshot_dates == [date(2024, 3, 31), date(2024, 4, 30)]


# --- guards ----------------------------------------------------------------------------------------------


def test_scheduled_as_of_earlier_than_newest_cutoff_is_refused() -> None:
    # Newest cutoff written is 2024-03-20 06:00Z.
    with pytest.raises(GuardError):
        plan_for(RunRequest(utc(2024, 3, 20, 5, 59)), written=HISTORY_TO_MAR_20)
    with pytest.raises(GuardError):
        plan_for(RunRequest(utc(2024, 2, 15)), written=HISTORY_TO_MAR_20)


def test_scheduled_as_of_earlier_than_newest_final_cutoff_is_refused() -> None:
    written = {date(2024, 1, 31): final(utc(2024, 2, 1)), date(2024, 2, 29): final(utc(2024, 3, 1))}
    with pytest.raises(GuardError):
        plan_for(RunRequest(utc(2024, 2, 20)), written=written)


def test_earlier_as_of_is_allowed_with_from() -> None:
    # Repair January and February as seen on 2024-03-15, although March was written up to 03-20.
    as_of = utc(2024, 3, 15)
    plan = plan_for(RunRequest(as_of, date_from=date(2024, 1, 1), date_to=date(2024, 2, 29)), written=HISTORY_TO_MAR_20)
    assert rows(plan) == [
        (date(2024, 1, 31), utc(2024, 2, 1), True),
        (date(2024, 2, 29), utc(2024, 3, 1), True),
    ]


def test_earlier_as_of_is_allowed_with_from_when_it_replaces_an_open_snapshot() -> None:
    # March is open in the table: an earlier open March may replace it.
    as_of = utc(2024, 3, 15)
    plan = plan_for(RunRequest(as_of, date_from=date(2024, 3, 1)), written=HISTORY_TO_MAR_20)
    assert rows(plan) == [(date(2024, 3, 31), as_of, False)]


def test_earlier_as_of_is_allowed_with_full_refresh() -> None:
    as_of = utc(2024, 3, 15)
    plan = plan_for(RunRequest(as_of, full_refresh=True), earliest_payment=utc(2024, 1, 2), written=HISTORY_TO_MAR_20)
    assert plan.replaces_whole_table
    assert rows(plan)[-1] == (date(2024, 3, 31), as_of, False)


def test_final_snapshot_is_never_replaced_by_an_open_one_even_with_from() -> None:
    # February is final in the table; as_of 2024-02-20 would make it open again.
    written = {date(2024, 1, 31): final(utc(2024, 2, 1)), date(2024, 2, 29): final(utc(2024, 3, 1))}
    with pytest.raises(GuardError, match="2024-02-29"):
        plan_for(RunRequest(utc(2024, 2, 20), date_from=date(2024, 2, 1)), written=written)
    with pytest.raises(GuardError, match="2024-02-29"):
        plan_for(RunRequest(utc(2024, 2, 20), date_from=date(2024, 1, 1), date_to=date(2024, 3, 31)), written=written)


def test_final_snapshot_is_never_replaced_by_an_open_one_with_full_refresh() -> None:
    written = {date(2024, 1, 31): final(utc(2024, 2, 1)), date(2024, 2, 29): final(utc(2024, 3, 1))}
    with pytest.raises(GuardError, match="2024-02-29"):
        plan_for(RunRequest(utc(2024, 2, 20), full_refresh=True), earliest_payment=utc(2024, 1, 2), written=written)


def test_from_with_earlier_as_of_may_rewrite_finals_that_stay_final() -> None:
    # January's cutoff (02-01) is before as_of 02-20, so January stays final: allowed.
    written = {date(2024, 1, 31): final(utc(2024, 2, 1)), date(2024, 2, 29): final(utc(2024, 3, 1))}
    plan = plan_for(
        RunRequest(utc(2024, 2, 20), date_from=date(2024, 1, 1), date_to=date(2024, 1, 31)), written=written
    )
    assert rows(plan) == [(date(2024, 1, 31), utc(2024, 2, 1), True)]


# --- other grains and zones ------------------------------------------------------------------------------


def test_weekly_grain_in_new_york_across_dst() -> None:
    # as_of Wed 2024-03-13 12:00Z (08:00 EDT). Earliest payment 2024-03-04 04:59Z = Sun 03-03 23:59 EST,
    # so the first week is Mon 02-26 .. Sun 03-03.
    # Week ends: Mon 03-04 00:00 EST = 05:00Z; Mon 03-11 00:00 EDT = 04:00Z (DST began Sun 03-10).
    as_of = utc(2024, 3, 13, 12)
    plan = plan_for(RunRequest(as_of), grain="week", timezone=NY, earliest_payment=utc(2024, 3, 4, 4, 59))
    assert rows(plan) == [
        (date(2024, 3, 3), utc(2024, 3, 4, 5), True),
        (date(2024, 3, 10), utc(2024, 3, 11, 4), True),
        (date(2024, 3, 17), as_of, False),
    ]


def test_weekly_scheduled_run_at_local_monday_midnight_in_new_york() -> None:
    # Mon 2024-03-11 00:00 EDT = 04:00Z: the week ending Sun 03-10 closes, the week ending 03-17 opens.
    written = {
        date(2024, 3, 3): final(utc(2024, 3, 4, 5)),
        date(2024, 3, 10): open_(utc(2024, 3, 9, 12)),
    }
    as_of = utc(2024, 3, 11, 4)
    plan = plan_for(RunRequest(as_of), grain="week", timezone=NY, written=written)
    assert rows(plan) == [
        (date(2024, 3, 10), utc(2024, 3, 11, 4), True),
        (date(2024, 3, 17), as_of, False),
    ]


def test_weekly_range_in_new_york() -> None:
    # Sundays within [2024-03-01, 2024-03-16]: 03-03 and 03-10.
    plan = plan_for(
        RunRequest(utc(2024, 3, 20), date_from=date(2024, 3, 1), date_to=date(2024, 3, 16)),
        grain="week",
        timezone=NY,
        written={date(2024, 3, 17): open_(utc(2024, 3, 19))},
    )
    assert plan.snapshot_dates == [date(2024, 3, 3), date(2024, 3, 10)]


def test_quarter_grain() -> None:
    # as_of exactly at the start of Q3 2024; earliest payment in Q4 2023.
    as_of = utc(2024, 7, 1)
    plan = plan_for(RunRequest(as_of), grain="quarter", earliest_payment=utc(2023, 11, 20, 10))
    assert rows(plan) == [
        (date(2023, 12, 31), utc(2024, 1, 1), True),
        (date(2024, 3, 31), utc(2024, 4, 1), True),
        (date(2024, 6, 30), utc(2024, 7, 1), True),
        (date(2024, 9, 30), as_of, False),
    ]


def test_quarter_grain_in_europe_berlin() -> None:
    # Q1 2024 ends 1 April 00:00 CEST (+2) = 2024-03-31 22:00Z; as_of 23:00Z is already in Q2 there.
    as_of = utc(2024, 3, 31, 23)
    plan = plan_for(RunRequest(as_of), grain="quarter", timezone="Europe/Berlin", earliest_payment=utc(2024, 2, 1))
    assert rows(plan) == [
        (date(2024, 3, 31), utc(2024, 3, 31, 22), True),
        (date(2024, 6, 30), as_of, False),
    ]


def test_quarter_range_is_literal() -> None:
    # 2024-06-29 is before Q2's snapshot date 06-30: only Q1.
    plan = plan_for(
        RunRequest(utc(2024, 8, 1), date_from=date(2024, 1, 1), date_to=date(2024, 6, 29)),
        grain="quarter",
        written={date(2024, 9, 30): open_(utc(2024, 7, 31))},
    )
    assert plan.snapshot_dates == [date(2024, 3, 31)]


def test_describe_lists_every_snapshot() -> None:
    plan = plan_for(RunRequest(utc(2024, 4, 1)), earliest_payment=utc(2024, 3, 5))
    assert plan.describe() == [
        "mode=full as_of=2024-04-01T00:00:00+00:00 snapshots=2",
        "  2024-03-31  cutoff_ts=2024-04-01T00:00:00+00:00  final",
        "  2024-04-30  cutoff_ts=2024-04-01T00:00:00+00:00  open",
    ]
