"""Concurrent writers (SPEC §3.3, §5.3): real `rfm-snapshot` processes, started together, on one path-mode Delta
table. Whatever the interleaving, every run ends well (exit 0, or 4 when it kept losing commits), and the
table holds exactly the rows of an uninterrupted run, once each.

The payments hold one row with a null payment_date (rejected, well under the 1% threshold), so runs also append
to the rejects table, and two first runs also race to create it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from process_helpers import (
    PAYMENTS_SCHEMA,
    JobDir,
    JobResult,
    TableVersion,
    assert_no_duplicate_keys,
    assert_same_rows,
    assert_same_table,
    commits,
    copy_job_dir,
    make_job_dir,
    payment_rows,
    read_table,
    read_version,
    start_job,
)
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

pytestmark = pytest.mark.slow

AS_OF = "2024-05-03T00:00:00Z"  # Jan..Apr closed, May open
ALL_SNAPSHOTS = ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]
JAN, FEB = "2024-01-31", "2024-02-29"
# The backfill base is a first run limited to March on (`periods.start` limits snapshots, not payments), so
# that January and February are missing; the racing runs backfill them with a config without that limit.
BASE_START = "2024-03-01"


@dataclass(frozen=True)
class Setup:
    payments: Path
    reference: TableVersion  # history of an uninterrupted full run at AS_OF
    reference_current: TableVersion
    reference_properties: dict[str, str]
    base: JobDir  # Mar..May written, Jan and Feb missing


@pytest.fixture(scope="module")
def setup(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("concurrency")
    rows = [*payment_rows(), ("u001", "p-no-date", None, None)]
    nullable = T.StructType([T.StructField(f.name, f.dataType, True) for f in PAYMENTS_SCHEMA.fields])
    payments = root / "payments"
    spark.createDataFrame(rows, nullable).coalesce(1).write.parquet(str(payments))

    reference_dir = make_job_dir(root / "reference", payments)
    base = make_job_dir(root / "base", payments, periods_start=BASE_START)
    # Two independent tables: run both at once.
    reference_run, base_run = start_job(reference_dir, "--as-of", AS_OF), start_job(base, "--as-of", AS_OF)
    reference_result, base_result = reference_run.wait(), base_run.wait()
    reference_result.assert_ok()
    base_result.assert_ok()
    assert reference_result.summary["snapshots_written"] == ALL_SNAPSHOTS, reference_result.report()
    assert reference_result.summary["rejects_by_reason"] == {"null_payment_date": 1}, reference_result.report()
    assert base_result.summary["snapshots_written"] == ALL_SNAPSHOTS[2:], base_result.report()

    reference = read_version(spark, reference_dir.history)
    assert [str(d) for d in reference.snapshot_dates()] == ALL_SNAPSHOTS
    assert_no_duplicate_keys(reference, "reference history")
    return Setup(
        payments,
        reference,
        read_version(spark, reference_dir.current),
        table_properties(spark, reference_dir.history),
        base,
    )


def table_properties(spark: SparkSession, path: Path) -> dict[str, str]:
    return dict(DeltaTable.forPath(spark, str(path)).detail().select("properties").first()[0])  # type: ignore[index]


def race(*runs: tuple[JobDir, Sequence[str]]) -> list[JobResult]:
    """Start every run at once, then wait for all of them."""
    started = [start_job(job, *args, name=f"racer{i}") for i, (job, args) in enumerate(runs)]
    return [process.wait() for process in started]


def assert_ended_well(results: list[JobResult]) -> list[JobResult]:
    """Each run exits 0, or 4 with a clear write-conflict message; at least one exits 0. Returns the winners."""
    for result in results:
        assert result.returncode in (0, 4), result.report()
        summary = result.summary
        assert summary["exit_code"] == result.returncode, result.report()
        if result.returncode == 4:
            assert summary["status"] == "failed", result.report()
            assert "write conflict" in result.stderr and "concurrent" in result.stderr, result.report()
            assert summary["error"].startswith("rfm-snapshot: write conflict:"), result.report()
        else:
            result.assert_ok()
    winners = [r for r in results if r.returncode == 0]
    assert winners, "no run succeeded:\n" + "\n\n".join(r.report() for r in results)
    return winners


def assert_commits_recorded(spark: SparkSession, job: JobDir, winners: list[JobResult]) -> None:
    """Every successful run's history commit is in the log, with its run_id and the snapshots it wrote."""
    log = commits(spark, job.history)
    for result in winners:
        summary = result.summary
        version = summary["history_version"]
        assert version in log, result.report()
        assert log[version].get("run_id") == summary["run_id"], (version, log[version], result.report())
        assert log[version].get("snapshots") == summary["snapshots_written"], (version, log[version])


def assert_current_is_newest(spark: SparkSession, job: JobDir, history: TableVersion, expected: TableVersion) -> None:
    """The current table reflects the newest history version and holds its newest snapshot."""
    current = read_version(spark, job.current)
    assert current.metadata.get("history_version") == history.version, (
        f"current reflects {current.metadata}, history is at {history.version}"
    )
    newest = max(history.snapshot_dates())
    assert_same_rows(current.rows, history.rows_for(newest), current.columns, "current vs the newest snapshot")
    assert_same_table(current, expected, "current vs the uninterrupted run's")


def files_by_snapshot(spark: SparkSession, path: Path) -> dict[date, set[str]]:
    """Names of the data files each snapshot's rows live in (a copied table keeps its file names)."""
    rows = (
        read_table(spark, path).select("snapshot_date", F.col("_metadata.file_name").alias("file")).distinct().collect()
    )
    files: dict[date, set[str]] = {}
    for row in rows:
        files.setdefault(row["snapshot_date"], set()).add(row["file"])
    return files


def test_two_runs_backfilling_different_snapshots_both_commit(spark: SparkSession, setup: Setup, tmp_path: Path):
    job = copy_job_dir(setup.base, tmp_path / "job", setup.payments)
    untouched = files_by_snapshot(spark, job.history)

    results = race(
        (job, ["--as-of", AS_OF, "--from", JAN, "--to", JAN]),
        (job, ["--as-of", AS_OF, "--from", FEB, "--to", FEB]),
    )

    for result in results:
        result.assert_ok()  # disjoint snapshots: neither has a reason to give up
    assert [r.summary["snapshots_written"] for r in results] == [[JAN], [FEB]]
    history = read_version(spark, job.history)
    assert_no_duplicate_keys(history)
    assert_same_table(history, setup.reference, "history after two concurrent backfills")
    assert_commits_recorded(spark, job, results)
    after = files_by_snapshot(spark, job.history)
    assert {d: after.get(d) for d in untouched} == untouched, "a backfill touched a snapshot it did not compute"
    assert_current_is_newest(spark, job, history, setup.reference_current)


def test_two_runs_writing_the_same_snapshot_leave_it_once(spark: SparkSession, setup: Setup, tmp_path: Path):
    job = copy_job_dir(setup.base, tmp_path / "job", setup.payments)
    args = ["--as-of", AS_OF, "--from", FEB, "--to", FEB]

    winners = assert_ended_well(race((job, args), (job, args)))

    history = read_version(spark, job.history)
    assert_no_duplicate_keys(history)
    expected = setup.reference.where(lambda row: row["snapshot_date"] >= date(2024, 2, 1))  # no January
    assert_same_rows(history.rows, expected, history.columns, "history after two runs wrote February at once")
    assert history.columns == setup.reference.columns
    assert_commits_recorded(spark, job, winners)
    assert_current_is_newest(spark, job, history, setup.reference_current)


def test_two_first_runs_racing_on_a_missing_table(spark: SparkSession, setup: Setup, tmp_path: Path):
    job = make_job_dir(tmp_path / "job", setup.payments)
    args = ["--as-of", AS_OF]

    winners = assert_ended_well(race((job, args), (job, args)))

    history = read_version(spark, job.history)
    assert_no_duplicate_keys(history)
    assert_same_table(history, setup.reference, "history after two racing first runs")
    assert_commits_recorded(spark, job, winners)
    assert table_properties(spark, job.history) == setup.reference_properties, "constraints or definitions differ"
    assert_current_is_newest(spark, job, history, setup.reference_current)
    rejects = read_version(spark, job.rejects)
    run_ids = Counter(row[rejects.columns.index("run_id")] for row in rejects.rows.elements())
    assert {r.summary["run_id"] for r in winners} <= set(run_ids), "a successful run's rejects are missing"
    assert all(n == 1 for n in run_ids.values()), f"a run appended its rejected row more than once: {run_ids}"
