"""The run plan: which snapshots a run writes, with their cutoffs (SPEC §3). Pure Python, no Spark."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from rfm.periods import local_day_of, period_bounds, period_index, snapshot_date


class PlanError(ValueError):
    """The request cannot be planned (no data, an empty range)."""


class NoPaymentsError(ValueError):
    """There is no valid payment before as_of, so there is nothing to compute."""


class GuardError(ValueError):
    """The request would move the history backwards; refused (SPEC §3.3 guards)."""


class Mode(StrEnum):
    FULL = "full"  # first run or --full-refresh: every period, the whole table replaced
    RANGE = "range"  # --from/--to: a repair or backfill of chosen snapshots
    SCHEDULED = "scheduled"  # the open period plus closed periods not yet final


@dataclass(frozen=True)
class Snapshot:
    period_index: int
    snapshot_date: date
    cutoff_ts: datetime
    is_final: bool


@dataclass(frozen=True)
class WrittenSnapshot:
    """What the history table already holds for one snapshot_date."""

    cutoff_ts: datetime
    is_final: bool


@dataclass(frozen=True)
class RunRequest:
    as_of: datetime
    full_refresh: bool = False
    date_from: date | None = None
    date_to: date | None = None


@dataclass(frozen=True)
class RunPlan:
    mode: Mode
    as_of: datetime
    snapshots: tuple[Snapshot, ...]

    @property
    def replaces_whole_table(self) -> bool:
        return self.mode is Mode.FULL

    @property
    def snapshot_dates(self) -> list[date]:
        return [s.snapshot_date for s in self.snapshots]

    @property
    def first_index(self) -> int:
        return self.snapshots[0].period_index

    @property
    def last_index(self) -> int:
        return self.snapshots[-1].period_index

    def describe(self) -> list[str]:
        lines = [f"mode={self.mode.value} as_of={self.as_of.isoformat()} snapshots={len(self.snapshots)}"]
        for s in self.snapshots:
            state = "final" if s.is_final else "open"
            lines.append(f"  {s.snapshot_date.isoformat()}  cutoff_ts={s.cutoff_ts.isoformat()}  {state}")
        return lines


def snapshot_for(index: int, grain: str, timezone: str, as_of: datetime) -> Snapshot:
    """Snapshot of period `index` as seen at `as_of`: closed periods cut at their end, the open one at as_of."""
    _, end = period_bounds(index, grain, timezone)
    is_final = end <= as_of
    return Snapshot(index, snapshot_date(index, grain), end if is_final else as_of, is_final)


def build_plan(
    request: RunRequest,
    *,
    grain: str,
    timezone: str,
    periods_start: date | None,
    earliest_payment: datetime | None,
    written: Mapping[date, WrittenSnapshot],
) -> RunPlan:
    """Decide the snapshots this run writes.

    `earliest_payment` is the earliest valid payment before as_of (None when there is none); `written` is
    what the history table holds now (empty on a first run).
    """
    as_of = request.as_of
    open_index = period_index(local_day_of(as_of, timezone), grain)
    floor_index = period_index(periods_start, grain) if periods_start is not None else None

    if request.date_from is not None:
        mode = Mode.RANGE
        first, last = _range_indexes(request, grain, open_index)
    elif request.full_refresh or not written:
        mode = Mode.FULL
        if earliest_payment is None:
            raise NoPaymentsError(f"no valid payment before as_of {as_of.isoformat()}: nothing to compute")
        first, last = period_index(local_day_of(earliest_payment, timezone), grain), open_index
    else:
        mode = Mode.SCHEDULED
        newest_cutoff = max(w.cutoff_ts for w in written.values())
        if as_of < newest_cutoff:
            raise GuardError(
                f"as_of {as_of.isoformat()} is earlier than the newest cutoff already written "
                f"({newest_cutoff.isoformat()}); use --from DATE or --full-refresh to rewrite the past"
            )
        finals = [d for d, w in written.items() if w.is_final]
        resume_day = max(finals) if finals else min(written)
        first = period_index(resume_day, grain) + (1 if finals else 0)
        last = open_index

    if floor_index is not None:
        first = max(first, floor_index)
    if first > last:
        raise PlanError(f"no snapshot to write between periods {first} and {last} (check --from/--to)")

    snapshots = tuple(snapshot_for(i, grain, timezone, as_of) for i in range(first, last + 1))
    refuse_unfinalising(snapshots, written)
    return RunPlan(mode, as_of, snapshots)


def check_request(request: RunRequest, *, grain: str, timezone: str) -> None:
    """The checks that need no data (run before Spark starts): a --from/--to range must hold a snapshot."""
    if request.date_from is not None:
        _range_indexes(request, grain, period_index(local_day_of(request.as_of, timezone), grain))


def _range_indexes(request: RunRequest, grain: str, open_index: int) -> tuple[int, int]:
    """--from/--to are literal snapshot dates, inclusive; --to defaults to and is clipped to the open one."""
    assert request.date_from is not None
    date_to = request.date_to or snapshot_date(open_index, grain)
    if request.date_to is not None and request.date_to < request.date_from:
        raise PlanError(f"--to {request.date_to} is before --from {request.date_from}")
    first = period_index(request.date_from, grain)
    if snapshot_date(first, grain) < request.date_from:
        first += 1
    last = min(period_index(date_to, grain), open_index)
    if snapshot_date(last, grain) > date_to:
        last -= 1
    if first > last:
        raise PlanError(
            f"no snapshot_date falls within --from {request.date_from} --to {date_to} "
            f"(the open period's snapshot is {snapshot_date(open_index, grain)})"
        )
    return first, last


def refuse_unfinalising(snapshots: tuple[Snapshot, ...], written: Mapping[date, WrittenSnapshot]) -> None:
    """A final snapshot is never replaced by an open one, whatever the mode."""
    for s in snapshots:
        existing = written.get(s.snapshot_date)
        if existing is not None and existing.is_final and not s.is_final:
            raise GuardError(
                f"snapshot {s.snapshot_date} is final in the history table and would be replaced by an open "
                f"one (as_of {s.cutoff_ts.isoformat()} is inside that period); refused"
            )
