"""Pure-Python tests of the demo payments generator (no Spark)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.demo_data import Payment, generate_payments, main

START, END = date(2023, 1, 1), date(2025, 12, 31)

# SPEC §4.3 default matrix, rows R = 5..1, columns F = 1..5.
MATRIX = {
    5: ("New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers", "Loyal Customers"),
    3: ("About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Cannot Lose Them"),
    1: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Cannot Lose Them"),
}


@pytest.fixture(scope="module")
def payments() -> list[Payment]:
    return generate_payments()


def test_same_seed_gives_same_rows_and_another_seed_does_not() -> None:
    first = generate_payments(seed=7, n_users=200)
    assert first == generate_payments(seed=7, n_users=200)
    assert first != generate_payments(seed=8, n_users=200)


def test_default_size_is_realistic(payments: list[Payment]) -> None:
    assert len({user_id for user_id, _, _, _ in payments}) == 2500
    assert 40_000 <= len(payments) <= 70_000


def test_ids_are_well_formed_and_payment_ids_unique(payments: list[Payment]) -> None:
    payment_ids = [payment_id for _, payment_id, _, _ in payments]
    assert len(set(payment_ids)) == len(payment_ids)
    assert all(re.fullmatch(r"p\d{7}", payment_id) for payment_id in payment_ids)
    assert all(re.fullmatch(r"u\d{5}", user_id) for user_id, _, _, _ in payments)
    # Ids are numbered in time order.
    assert [paid_at for _, _, paid_at, _ in payments] == sorted(paid_at for _, _, paid_at, _ in payments)


def test_dates_are_utc_and_within_range(payments: list[Payment]) -> None:
    lowest = datetime(START.year, START.month, START.day, tzinfo=UTC)
    beyond = datetime(END.year, END.month, END.day, tzinfo=UTC) + timedelta(days=1)
    dates = [paid_at for _, _, paid_at, _ in payments]
    assert all(paid_at.utcoffset() == timedelta(0) for paid_at in dates)
    assert lowest <= min(dates) and max(dates) < beyond
    # Realistic times of day, and the December peak.
    assert len({paid_at.hour for paid_at in dates}) == 24
    per_month = Counter(paid_at.month for paid_at in dates if paid_at.year == 2024)
    assert per_month[12] > 1.3 * per_month[6]


def test_short_custom_range_stays_inside_it() -> None:
    rows = generate_payments(seed=1, n_users=300, start=date(2024, 3, 1), end=date(2024, 3, 31))
    assert {paid_at.date() for _, _, paid_at, _ in rows} <= {date(2024, 3, d) for d in range(1, 32)}


def test_amounts_are_positive_with_two_decimals(payments: list[Payment]) -> None:
    amounts = [amount for _, _, _, amount in payments]
    assert all(isinstance(amount, Decimal) for amount in amounts)
    assert all(amount > 0 and amount.as_tuple().exponent == -2 for amount in amounts)
    assert max(amounts) < Decimal("1e10")  # fits DECIMAL(12, 2)


def _percent_rank(values: list[float]) -> list[float]:
    """SPEC §4.1: (rank - 1) / (n - 1), ties share the lowest rank, ascending."""
    ordered = sorted(values)
    lowest_rank: dict[float, int] = {}
    for position, value in enumerate(ordered):
        lowest_rank.setdefault(value, position)
    return [lowest_rank[value] / (len(values) - 1) for value in values]


def _score(percentile: float) -> int:
    return 1 + sum(percentile >= threshold for threshold in (0.2, 0.4, 0.6, 0.8))


def test_newest_snapshot_has_every_segment(payments: list[Payment]) -> None:
    last_paid: dict[str, datetime] = {}
    frequency: Counter[str] = Counter()
    for user_id, _, paid_at, _ in payments:
        last_paid[user_id] = max(paid_at, last_paid.get(user_id, paid_at))
        frequency[user_id] += 1
    users = sorted(last_paid)
    # Recency ranked descending = the latest payment ranked ascending.
    recency_pct = _percent_rank([last_paid[u].timestamp() for u in users])
    frequency_pct = _percent_rank([float(frequency[u]) for u in users])
    segments = Counter(MATRIX[_score(r)][_score(f) - 1] for r, f in zip(recency_pct, frequency_pct, strict=True))
    assert len(segments) == 10
    assert min(segments.values()) >= 0.02 * len(users), segments


def test_main_keeps_an_existing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "payments"
    existing.mkdir()
    (existing / "part-0.parquet").write_bytes(b"not touched")

    assert main(["--path", str(existing)]) == 0

    assert "kept" in capsys.readouterr().out
    assert (existing / "part-0.parquet").read_bytes() == b"not touched"
