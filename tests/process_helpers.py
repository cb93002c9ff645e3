"""Shared helpers for the tests that run `rfm-snapshot` as real OS processes (crash safety, concurrency).

Every job process gets its own session (`start_new_session=True`), so it leads its own process group: the
job's fault injection (`RFM_FAULT_AT`) and the tests' external kills hit that process and its Spark JVM only.
stdout and stderr go to files, never to pipes, so a chatty JVM can never block on a full pipe.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

# A job process is a Python driver plus a local Spark JVM (10-20 s to start on 2 cores); allow for a busy box.
JOB_TIMEOUT_SECONDS = 240

PAYMENTS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), False),
        T.StructField("payment_id", T.StringType(), False),
        T.StructField("payment_date", T.TimestampType(), False),
        T.StructField("payment_amount", T.DecimalType(12, 2), False),
    ]
)

HISTORY_KEY = ("snapshot_date", "user_id")

# Environment a parent PySpark driver may export; a child must start its own gateway, never reuse ours.
_PARENT_ONLY_ENV = ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "RFM_FAULT_AT")


# --------------------------------------------------------------------------------------------------- input


def payment_rows(seed: int = 20240101, users: int = 40, payments: int = 320) -> list[tuple[Any, ...]]:
    """Deterministic payments from 2024-01-03 to 2024-04-28 (UTC), amounts DECIMAL(12,2).

    Amounts come from a small set of values, so monetary ties (shared PERCENT_RANK ranks) occur; two exact
    duplicates of real rows are appended (collapsed by the job, not rejected).
    """
    rng = random.Random(seed)
    start = datetime(2024, 1, 3, tzinfo=UTC)
    span_seconds = int((datetime(2024, 4, 28, 23, 0, tzinfo=UTC) - start).total_seconds())
    rows = []
    for i in range(payments):
        user = f"u{rng.randrange(users):03d}"
        when = start + timedelta(seconds=rng.randrange(span_seconds))
        amount = Decimal(rng.choice([5, 10, 25, 49, 99, 150, 250, 499])) + Decimal(rng.randrange(0, 100, 25)) / 100
        rows.append((user, f"p{i:05d}", when, amount))
    rows += [rows[7], rows[123]]
    return rows


def write_payments(spark: SparkSession, path: Path, rows: list[tuple[Any, ...]] | None = None) -> Path:
    spark.createDataFrame(rows if rows is not None else payment_rows(), PAYMENTS_SCHEMA).coalesce(1).write.mode(
        "overwrite"
    ).parquet(str(path))
    return path


# ------------------------------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class JobDir:
    """One set of job outputs (history, current segments, rejects) and the config that points at them."""

    root: Path
    config: Path

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects"


def make_job_dir(root: Path, source: Path, *, periods_start: str | None = None, commit_retries: int = 5) -> JobDir:
    root.mkdir(parents=True, exist_ok=True)
    periods: dict[str, Any] = {"grain": "month", "timezone": "UTC"}
    if periods_start is not None:
        periods["start"] = periods_start
    config = {
        "source": {"format": "parquet", "path": str(source)},
        "periods": periods,
        "output": {
            "history_path": str(root / "history"),
            "current_path": str(root / "current"),
            "rejects_path": str(root / "rejects"),
            "commit_retries": commit_retries,
        },
        "spark": {
            "master": "local[1]",
            "conf": {
                "spark.sql.shuffle.partitions": "2",
                "spark.databricks.delta.snapshotPartitions": "2",
                # Short-lived JVMs on a shared 2-core box: the C1 JIT and the serial GC cut startup CPU.
                "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
            },
        },
    }
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return JobDir(root, config_path)


def copy_job_dir(source_dir: JobDir, root: Path, payments: Path, **config: Any) -> JobDir:
    """A copy of another job dir's tables (Delta logs use relative file paths, so a copy is a valid table)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("history", "current", "rejects"):
        if (source_dir.root / name).exists():
            shutil.copytree(source_dir.root / name, root / name)
    return make_job_dir(root, payments, **config)


# ----------------------------------------------------------------------------------------------- processes


@dataclass
class JobProcess:
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    argv: list[str]
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill_group(self) -> None:
        """SIGKILL the job's whole process group (driver and JVM), as when the node dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def wait(self, timeout: float = JOB_TIMEOUT_SECONDS) -> JobResult:
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            self.popen.wait()
            raise AssertionError(f"job did not finish within {timeout}s: {self.describe()}") from None
        # Nothing of the group may outlive its driver (an orphaned JVM, say). The group id stays reserved
        # while any member lives, so a group found alive here is still this job's.
        if group_members(self.popen.pid):
            self.kill_group()
        return JobResult(
            code,
            self.stdout_path.read_text(encoding="utf-8", errors="replace"),
            self.stderr_path.read_text(encoding="utf-8", errors="replace"),
            self.argv,
            time.monotonic() - self.started,
        )

    def describe(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class JobResult:
    returncode: int
    stdout: str
    stderr: str
    argv: list[str]
    seconds: float

    @property
    def summary(self) -> dict[str, Any]:
        """The JSON summary: the last line of stdout."""
        lines = self.stdout.strip().splitlines()
        assert lines, f"no stdout at all\n{self.report()}"
        try:
            value = json.loads(lines[-1])
        except ValueError:
            raise AssertionError(f"last stdout line is not the JSON summary\n{self.report()}") from None
        assert isinstance(value, dict), self.report()
        return value

    def report(self, tail: int = 6000) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit code {self.returncode} after {self.seconds:.1f}s\n"
            f"--- stdout (tail) ---\n{self.stdout[-tail:]}\n--- stderr (tail) ---\n{self.stderr[-tail:]}"
        )

    def assert_ok(self) -> JobResult:
        assert self.returncode == 0, self.report()
        summary = self.summary
        assert summary["status"] == "succeeded" and summary["exit_code"] == 0, self.report()
        return self

    def assert_sigkilled(self) -> None:
        assert self.returncode == -signal.SIGKILL, f"expected death by SIGKILL\n{self.report()}"


def group_members(pgid: int) -> list[int]:
    """Pids of live processes in process group `pgid` (read from /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def job_command() -> list[str]:
    script = Path(sys.executable).parent / "rfm-snapshot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "jobs.rfm_snapshot"]


def start_job(job: JobDir, *args: str, fault_at: str | None = None, name: str = "run") -> JobProcess:
    env = {k: v for k, v in os.environ.items() if k not in _PARENT_ONLY_ENV}
    if fault_at is not None:
        env["RFM_FAULT_AT"] = fault_at
    argv = [*job_command(), "--config", str(job.config), *args]
    logs = job.root / "logs"
    logs.mkdir(exist_ok=True)
    stamp = f"{name}-{time.monotonic_ns()}"
    stdout_path, stderr_path = logs / f"{stamp}.out", logs / f"{stamp}.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        popen = subprocess.Popen(
            argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=job.root, start_new_session=True
        )
    process = JobProcess(popen, stdout_path, stderr_path, argv)
    _STARTED.append(process)
    return process


def kill_unfinished_jobs() -> None:
    """SIGKILL every job this test process started that is still running (e.g. after an interrupted test).
    Only unreaped processes are touched, so each group id is still that job's."""
    for process in _STARTED:
        if process.popen.poll() is None:
            process.kill_group()
            process.popen.wait()


_STARTED: list[JobProcess] = []
atexit.register(kill_unfinished_jobs)


def run_job(job: JobDir, *args: str, fault_at: str | None = None, name: str = "run") -> JobResult:
    return start_job(job, *args, fault_at=fault_at, name=name).wait()


# ------------------------------------------------------------------------------------------------ tables


def read_table(spark: SparkSession, path: Path, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(str(path))


def is_delta_table(spark: SparkSession, path: Path) -> bool:
    return DeltaTable.isDeltaTable(spark, str(path))


def commits(spark: SparkSession, path: Path) -> dict[int, dict[str, Any]]:
    """Every commit of a table: version -> parsed userMetadata ({} when there is none)."""
    rows = DeltaTable.forPath(spark, str(path)).history().select("version", "userMetadata").collect()
    return {int(r[0]): json.loads(r[1]) if r[1] else {} for r in rows}


def latest_version(spark: SparkSession, path: Path) -> int:
    return max(commits(spark, path))


@dataclass(frozen=True)
class TableVersion:
    """One version of a table, read once into Python: its rows as a multiset, and its commit metadata."""

    path: Path
    version: int
    columns: tuple[str, ...]
    rows: Counter[tuple[Any, ...]]
    metadata: dict[str, Any]

    def _index(self, column: str) -> int:
        return self.columns.index(column)

    def snapshot_dates(self) -> list[date]:
        i = self._index("snapshot_date")
        return sorted({row[i] for row in self.rows})

    def rows_for(self, snapshot_date: date) -> Counter[tuple[Any, ...]]:
        i = self._index("snapshot_date")
        return Counter({row: n for row, n in self.rows.items() if row[i] == snapshot_date})

    def where(self, keep: Callable[[dict[str, Any]], bool]) -> Counter[tuple[Any, ...]]:
        return Counter({row: n for row, n in self.rows.items() if keep(dict(zip(self.columns, row, strict=True)))})

    def duplicate_keys(self) -> list[tuple[Any, ...]]:
        """(snapshot_date, user_id) pairs held by more than one row."""
        key = [self._index(c) for c in HISTORY_KEY]
        counts = Counter[tuple[Any, ...]]()
        for row, n in self.rows.items():
            counts[tuple(row[i] for i in key)] += n
        return sorted(k for k, n in counts.items() if n > 1)


def read_version(spark: SparkSession, path: Path, version: int | None = None) -> TableVersion:
    """The table at `version` (default: the newest), read once."""
    log = commits(spark, path)
    version = max(log) if version is None else version
    df = read_table(spark, path, version)
    rows = Counter(tuple(r) for r in df.collect())
    return TableVersion(path, version, tuple(df.columns), rows, log[version])


def assert_same_rows(
    actual: Counter[tuple[Any, ...]], expected: Counter[tuple[Any, ...]], columns: Sequence[str], what: str
) -> None:
    """Equal multisets of rows, every column compared exactly; on a difference, show the rows that differ."""
    if actual == expected:
        return
    missing, unexpected = expected - actual, actual - expected

    def show(rows: Counter[tuple[Any, ...]]) -> str:
        listed = sorted(rows.elements(), key=repr)[:8]
        return "\n".join("    " + ", ".join(f"{c}={v!r}" for c, v in zip(columns, row, strict=True)) for row in listed)

    raise AssertionError(
        f"{what}: {sum(actual.values())} rows, expected {sum(expected.values())}; "
        f"{sum(missing.values())} expected rows missing, {sum(unexpected.values())} unexpected rows\n"
        f"  missing (first 8):\n{show(missing)}\n  unexpected (first 8):\n{show(unexpected)}"
    )


def assert_same_table(actual: TableVersion, expected: TableVersion, what: str) -> None:
    assert actual.columns == expected.columns, f"{what}: columns {actual.columns} != {expected.columns}"
    assert_same_rows(actual.rows, expected.rows, actual.columns, what)


def assert_no_duplicate_keys(table: TableVersion, what: str = "history") -> None:
    duplicated = table.duplicate_keys()
    assert not duplicated, f"{what}: {len(duplicated)} duplicated (snapshot_date, user_id), e.g. {duplicated[:5]}"
