"""Seeded, realistic demo payments for `make run` on a fresh machine.

`generate_payments` is pure Python (one `random.Random(seed)`, no Spark): the same seed and arguments always
give the same rows. Each user is given one behaviour, drawn with the shares below, and the behaviour decides
when the user first and last paid, how often they pay in between and how much they spend. The behaviours are
chosen so that the newest snapshot (as of `end`) contains every segment of the default R x F matrix
(SPEC §4.3) in useful numbers; the comments name the segment each one is meant to land in.

| behaviour          | share | pattern                                                                       |
|--------------------|-------|-------------------------------------------------------------------------------|
| champion           | 10%   | big baskets every 1-2 weeks for 1-3 years, the last in the final 10 days      |
| loyal              | 12%   | a purchase every 10-24 days for 1-3 years, the last 2-8 weeks before the end  |
| new_customer       |  8%   | one purchase in the final 2 weeks                                             |
| promising          |  6%   | one purchase 2-9 weeks before the end                                         |
| potential_loyalist | 12%   | joined 2-10 months ago, a purchase every 4-8 weeks, the last one recent       |
| need_attention     |  8%   | regular for 1-2.5 years, every 3-7 weeks, quiet for the last 2-4 months       |
| about_to_sleep     |  8%   | 1-3 purchases (half of them only one), the last one 2-4 months ago            |
| at_risk            | 12%   | used to buy every 2-5 weeks for 1-2 years, lapsed 5-14 months ago             |
| cannot_lose        |  6%   | very frequent (every 6-12 days) big spenders who lapsed 4-12 months ago       |
| hibernating        | 18%   | 1-3 purchases (60% only one), the last one 7 months to 3 years ago            |

Purchases between a user's first and last one follow a Poisson process whose rate follows the season: busier
in November and much busier in December, quieter in January, February and summer. Times of day follow a
daily curve (quiet at night, peaks at lunch and in the evening, UTC). Amounts are log-normal: each user has
a typical basket drawn around their behaviour's median, and each purchase varies around it.

Payment ids are numbered in time order (`p0000001` is the oldest payment); user ids are `u00001`..`uNNNNN`
with behaviours shuffled across them.

`write_demo_payments` writes the rows as Parquet with an explicit schema, through a temporary sibling
directory renamed into place, so a killed run never leaves a half-written dataset where the job looks for
it. Local file system paths only (this is demo data).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

Payment = tuple[str, str, datetime, Decimal]

CENT = Decimal("0.01")
ROWS_PER_CHUNK = 4000
TIMESTAMP_TYPE_CONF = "spark.sql.parquet.outputTimestampType"
MIN_AMOUNT = 0.5

# Relative purchase rate per calendar month: Black Friday / holiday peaks, post-holiday and summer dips.
MONTH_WEIGHT = {1: 0.8, 2: 0.85, 3: 1.0, 4: 1.0, 5: 1.0, 6: 0.95, 7: 0.9, 8: 0.9, 9: 1.0, 10: 1.05, 11: 1.3, 12: 1.7}
MAX_MONTH_WEIGHT = max(MONTH_WEIGHT.values())

# Relative share of purchases per hour of day (UTC): quiet at night, lunch and evening peaks.
HOUR_WEIGHT = (
    *(0.6, 0.3, 0.2, 0.15, 0.15, 0.2, 0.4, 0.8, 1.2, 1.5, 1.7, 1.9),  # 00:00-11:59
    *(2.3, 2.2, 1.8, 1.7, 1.7, 1.9, 2.2, 2.6, 2.8, 2.5, 1.8, 1.1),  # 12:00-23:59
)
HOURS = tuple(range(24))


@dataclass(frozen=True)
class Behaviour:
    """One kind of customer. Day ranges are counted back from `end` (0 = the last day of data)."""

    name: str
    share: float
    last_ago: tuple[int, int]
    # How long before the last purchase the first one was; (0, 0) means a single purchase.
    tenure: tuple[int, int]
    # Either a mean gap between purchases (days) or a fixed number of purchases in between.
    gap_days: tuple[float, float] | None
    extra_purchases: tuple[int, int] | None
    median_amount: float
    # Probability that the user paid once only, whatever the ranges above say.
    one_off: float = 0.0
    sigma_user: float = 0.5
    sigma_payment: float = 0.35


BEHAVIOURS: tuple[Behaviour, ...] = (
    # Champions: frequent, recent, high spend.
    Behaviour("champion", 0.10, (0, 10), (365, 1095), (7.0, 16.0), None, 95.0),
    # Loyal customers: frequent, fairly recent.
    Behaviour("loyal", 0.12, (14, 56), (365, 1000), (10.0, 24.0), None, 60.0),
    # New customers: first and only purchase very recently.
    Behaviour("new_customer", 0.08, (0, 14), (0, 0), None, (0, 0), 40.0),
    # Promising: one purchase a little while ago.
    Behaviour("promising", 0.06, (14, 63), (0, 0), None, (0, 0), 45.0),
    # Potential loyalists: joined recently, a handful of purchases, still active.
    Behaviour("potential_loyalist", 0.12, (0, 45), (60, 270), (28.0, 56.0), None, 50.0),
    # Need attention: regular mid-frequency buyers gone quiet for a few months.
    Behaviour("need_attention", 0.08, (60, 120), (300, 900), (21.0, 49.0), None, 55.0),
    # About to sleep: a few purchases, the last one a few months ago.
    Behaviour("about_to_sleep", 0.08, (60, 120), (30, 240), None, (0, 1), 40.0, one_off=0.5),
    # At risk: used to be frequent, lapsed months ago.
    Behaviour("at_risk", 0.12, (150, 420), (300, 700), (14.0, 35.0), None, 55.0),
    # Cannot lose them: very frequent big spenders who lapsed.
    Behaviour("cannot_lose", 0.06, (120, 360), (400, 700), (6.0, 12.0), None, 120.0),
    # Hibernating: few purchases, long ago.
    Behaviour("hibernating", 0.18, (210, 1095), (30, 365), None, (0, 1), 35.0, one_off=0.6),
)


def _purchase_days(rng: random.Random, b: Behaviour, start: date, end: date) -> list[date]:
    """Days on which one user of behaviour `b` paid, sorted, within [start, end]."""
    span = (end - start).days
    last_ago = min(rng.randint(*b.last_ago), span)
    if rng.random() < b.one_off:
        return [end - timedelta(days=last_ago)]
    first_ago = min(last_ago + rng.randint(*b.tenure), span)
    first, last = end - timedelta(days=first_ago), end - timedelta(days=last_ago)
    days = [first] if first == last else [first, last]
    window = (last - first).days
    if window <= 1:
        return days
    if b.extra_purchases is not None:
        wanted = rng.randint(*b.extra_purchases)
        while wanted > 0:
            day = first + timedelta(days=rng.randint(1, window - 1))
            if rng.random() < MONTH_WEIGHT[day.month] / MAX_MONTH_WEIGHT:
                days.append(day)
                wanted -= 1
    elif b.gap_days is not None:
        # Poisson process thinned by the seasonal weight: candidate gaps at the peak rate, each kept with
        # probability weight(month) / peak weight.
        peak_rate = MAX_MONTH_WEIGHT / rng.uniform(*b.gap_days)
        offset = rng.expovariate(peak_rate)
        while offset < window:
            day = first + timedelta(days=int(offset))
            if day != first and rng.random() < MONTH_WEIGHT[day.month] / MAX_MONTH_WEIGHT:
                days.append(day)
            offset += rng.expovariate(peak_rate)
    return sorted(days)


def _timestamp(rng: random.Random, day: date) -> datetime:
    hour = rng.choices(HOURS, weights=HOUR_WEIGHT)[0]
    return datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=UTC)


def _amount(rng: random.Random, typical: float, sigma: float) -> Decimal:
    value = max(MIN_AMOUNT, rng.lognormvariate(math.log(typical), sigma))
    return Decimal(str(value)).quantize(CENT)


def generate_payments(
    seed: int = 42,
    n_users: int = 2500,
    start: date = date(2023, 1, 1),
    end: date = date(2025, 12, 31),
) -> list[Payment]:
    """Return demo payments `(user_id, payment_id, payment_date, payment_amount)`, sorted by payment id.

    Deterministic for a given seed and arguments. `payment_date` is a UTC-aware datetime on a day in
    [start, end]; `payment_amount` is a positive Decimal with two decimals.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if n_users < 1:
        raise ValueError(f"n_users must be positive, got {n_users}")
    rng = random.Random(seed)
    behaviours = rng.choices(BEHAVIOURS, weights=[b.share for b in BEHAVIOURS], k=n_users)
    width = max(5, len(str(n_users)))
    events: list[tuple[datetime, str, Decimal]] = []
    for index, behaviour in enumerate(behaviours, start=1):
        user_id = f"u{index:0{width}d}"
        typical = behaviour.median_amount * rng.lognormvariate(0.0, behaviour.sigma_user)
        for day in _purchase_days(rng, behaviour, start, end):
            events.append((_timestamp(rng, day), user_id, _amount(rng, typical, behaviour.sigma_payment)))
    events.sort()
    id_width = max(7, len(str(len(events))))
    return [
        (user_id, f"p{number:0{id_width}d}", paid_at, amount)
        for number, (paid_at, user_id, amount) in enumerate(events, start=1)
    ]


def _local_path(path: str) -> Path:
    if path.startswith("file:"):
        path = path[len("file:") :].lstrip("/")
        path = "/" + path
    elif "://" in path:
        raise ValueError(f"demo data is written to the local file system only, got {path!r}")
    return Path(path).expanduser().resolve()


def _remove_stale_temporaries(target: Path, older_than_seconds: float = 3600.0) -> None:
    """Remove temporary directories left by killed runs (old enough not to belong to a live one)."""
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        if leftover.is_dir() and now - leftover.stat().st_mtime > older_than_seconds:
            shutil.rmtree(leftover, ignore_errors=True)


def write_demo_payments(spark: SparkSession, path: str, **kwargs: Any) -> int:
    """Write `generate_payments(**kwargs)` as Parquet at `path` and return the number of rows.

    The data is written to a hidden temporary sibling directory and renamed into place, so `path` either
    holds the complete dataset or does not exist. An existing `path` is never overwritten.
    """
    from pyspark.sql import DataFrame
    from pyspark.sql import types as T

    target = _local_path(path)
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it to regenerate the demo data")
    rows = generate_payments(**kwargs)
    schema = T.StructType(
        [
            T.StructField("user_id", T.StringType(), nullable=False),
            T.StructField("payment_id", T.StringType(), nullable=False),
            T.StructField("payment_date", T.TimestampType(), nullable=False),
            T.StructField("payment_amount", T.DecimalType(12, 2), nullable=False),
        ]
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    temporary = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    try:
        # Local rows travel inside the tasks that read them; chunks keep each task small (Spark warns about
        # tasks over 1 MB), and the shuffle to one partition gives a single file in payment-id order.
        chunks = [rows[i : i + ROWS_PER_CHUNK] for i in range(0, len(rows), ROWS_PER_CHUNK)]
        payments_df = reduce(DataFrame.unionAll, [spark.createDataFrame(c, schema=schema) for c in chunks])
        # Spark's default INT96 timestamps are read as naive local times by most non-Spark readers;
        # TIMESTAMP_MICROS is marked as UTC-adjusted in the file. There is no per-write option for it.
        previous = spark.conf.get(TIMESTAMP_TYPE_CONF)
        spark.conf.set(TIMESTAMP_TYPE_CONF, "TIMESTAMP_MICROS")
        try:
            (
                payments_df.repartition(1)
                .sortWithinPartitions("payment_id")
                .write.mode("errorifexists")
                .parquet(temporary.as_uri())
            )
        finally:
            if previous is None:
                spark.conf.unset(TIMESTAMP_TYPE_CONF)
            else:
                spark.conf.set(TIMESTAMP_TYPE_CONF, previous)
        os.rename(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write seeded demo payments as Parquet (kept if present).")
    parser.add_argument("--path", required=True, help="output directory (local file system)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument("--users", type=int, default=2500, help="number of users (default: 2500)")
    args = parser.parse_args(argv)

    if _local_path(args.path).exists():
        print(f"demo payments already at {args.path}; kept as they are")
        return 0

    from pyspark.sql import SparkSession

    from rfm.session import build_session

    # Stop the session on the way out only if this call started it (main() may run inside a live one).
    owns_session = SparkSession.getActiveSession() is None
    spark = build_session(master="local[2]")
    try:
        count = write_demo_payments(spark, args.path, seed=args.seed, n_users=args.users)
    finally:
        if owns_session:
            spark.stop()
    print(f"wrote {count} demo payments to {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
