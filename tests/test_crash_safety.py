"""Crash safety (SPEC §5.3): a run killed at any point leaves the history table at exactly its previous
version or exactly the new one, the current-segments table never shows a snapshot the history lacks, and the
next run heals everything.

Real processes: each run is `rfm-snapshot` in its own process group, killed with SIGKILL as when a node dies
(`RFM_FAULT_AT=<step>` makes the job kill itself at a known step; one more case is killed from outside, a
random moment after it starts writing the history table). Every scenario starts from a copy of the tables a
first run at AS_OF_A wrote, then makes the scheduled run at AS_OF_B, which replaces the open March snapshot
by a final one and adds April (final) and May (open):

    after run A:  2024-01-31 final | 2024-02-29 final | 2024-03-31 open (cutoff AS_OF_A)
    after run B:  2024-01-31 final | 2024-02-29 final | 2024-03-31 final | 2024-04-30 final | 2024-05-31 open
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from process_helpers import (
    JobDir,
    JobProcess,
    JobResult,
    TableVersion,
    assert_no_duplicate_keys,
    assert_same_rows,
    assert_same_table,
    copy_job_dir,
    is_delta_table,
    kill_unfinished_jobs,
    make_job_dir,
    read_version,
    run_job,
    start_job,
    write_payments,
)
from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow

AS_OF_A = "2024-03-15T12:00:00Z"
AS_OF_B = "2024-05-03T00:00:00Z"
SNAPSHOTS_A = ["2024-01-31", "2024-02-29", "2024-03-31"]
SNAPSHOTS_B = ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]

# Where the job kills itself, and the history state the SPEC then requires.
FAULT_STEPS = {
    "after_validation": "previous",
    "before_history_commit": "previous",
    "after_history_commit": "new",
    "after_current_commit": "new",
}
EXTERNAL_KILL = "external_kill_during_history_write"


@dataclass(frozen=True)
class Baseline:
    payments: Path
    after_a: JobDir  # the tables every scenario copies (no run ever writes here again)
    previous: TableVersion  # the history after run A
    reference_dir: JobDir
    reference: JobProcess  # the uninterrupted run at AS_OF_B on its own copy, started in the background


@pytest.fixture(scope="module")
def baseline(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baseline]:
    root = tmp_path_factory.mktemp("crash")
    payments = write_payments(spark, root / "payments")
    after_a = make_job_dir(root / "after_a", payments)
    first = run_job(after_a, "--as-of", AS_OF_A, name="run-a").assert_ok()
    assert first.summary["snapshots_written"] == SNAPSHOTS_A, first.report()
    previous = read_version(spark, after_a.history)
    assert [str(d) for d in previous.snapshot_dates()] == SNAPSHOTS_A
    assert read_version(spark, after_a.current).metadata["history_version"] == previous.version

    # The reference runs alongside the first scenario: it has its own copy, so nothing is shared.
    reference_dir = copy_job_dir(after_a, root / "reference_b", payments)
    reference = start_job(reference_dir, "--as-of", AS_OF_B, name="reference-b")
    yield Baseline(payments, after_a, previous, reference_dir, reference)
    kill_unfinished_jobs()  # the reference, if no test got as far as waiting for it


@dataclass(frozen=True)
class Expected:
    """What the uninterrupted run at AS_OF_B leaves, and so what every healed table must equal."""

    history: TableVersion
    current: TableVersion


@pytest.fixture(scope="module")
def expected(spark: SparkSession, baseline: Baseline) -> Expected:
    result = baseline.reference.wait().assert_ok()
    assert result.summary["mode"] == "scheduled", result.report()
    assert result.summary["snapshots_written"] == SNAPSHOTS_B[2:], result.report()
    history = read_version(spark, baseline.reference_dir.history)
    assert [str(d) for d in history.snapshot_dates()] == SNAPSHOTS_B
    assert history.version == baseline.previous.version + 1, "the scheduled run should be one history commit"
    assert_no_duplicate_keys(history, "reference history")
    return Expected(history, read_version(spark, baseline.reference_dir.current))


def kill_during_history_write(job: JobDir, rng: random.Random) -> tuple[JobResult, str]:
    """Start the run at AS_OF_B; as soon as it writes into the history table (a new data file, or a change in
    _delta_log), wait a random moment and SIGKILL its whole process group."""
    files_before, log_before = _data_files(job.history), _log_entries(job.history)
    process = start_job(job, "--as-of", AS_OF_B, name="external-kill")
    deadline = time.monotonic() + 240
    while True:
        if process.popen.poll() is not None:
            raise AssertionError(f"the run ended before it wrote to the history table\n{process.wait().report()}")
        if time.monotonic() > deadline:
            process.kill_group()
            raise AssertionError(f"the run never wrote to the history table\n{process.wait().report()}")
        new_files = _data_files(job.history) - files_before
        if new_files or _log_entries(job.history) != log_before:
            break
        time.sleep(0.005)
    delay = rng.uniform(0.0, 0.4)
    time.sleep(delay)
    process.kill_group()
    trigger = f"{len(new_files)} new data file(s)" if new_files else "a _delta_log change"
    return process.wait(), f"SIGKILL {delay:.3f}s after {trigger}"


def _data_files(table: Path) -> set[Path]:
    found: set[Path] = set()
    for directory, _, names in os.walk(table):
        if "_delta_log" not in Path(directory).parts:
            found.update(Path(directory, n) for n in names if n.endswith(".parquet") and not n.startswith("."))
    return found


def _log_entries(table: Path) -> set[str]:
    try:
        return set(os.listdir(table / "_delta_log"))
    except FileNotFoundError:
        return set()


def history_state(history: TableVersion, baseline: Baseline, expected: Expected, how: str) -> str:
    """'previous' or 'new' when the history table is exactly one of them; fails otherwise."""
    if history.version == baseline.previous.version:
        assert_same_table(history, baseline.previous, f"{how}: history at the previous version")
        return "previous"
    assert history.version == expected.history.version, (
        f"{how}: history at version {history.version}, neither the previous version {baseline.previous.version} "
        f"nor one new commit ({expected.history.version})"
    )
    assert history.metadata.get("as_of") == "2024-05-03T00:00:00+00:00", history.metadata
    assert history.metadata.get("snapshots") == SNAPSHOTS_B[2:], history.metadata
    assert_same_table(history, expected.history, f"{how}: history at the new version")
    return "new"


def assert_current_consistent(spark: SparkSession, job: JobDir, history: TableVersion, how: str) -> int:
    """The current table shows one snapshot that the history table has, equal to the history's rows for that
    date in the history version it records (where it is the newest snapshot). Returns that version."""
    assert is_delta_table(spark, job.current), f"{how}: the current-segments table is gone"
    current = read_version(spark, job.current)
    reflected = current.metadata.get("history_version")
    assert isinstance(reflected, int), f"{how}: current commit metadata {current.metadata}"
    assert reflected <= history.version, f"{how}: current reflects {reflected}, history is at {history.version}"
    shown = current.snapshot_dates()
    assert len(shown) == 1, f"{how}: the current table shows snapshots {shown}"
    assert shown[0] in history.snapshot_dates(), f"{how}: current shows {shown[0]}, which the history lacks"
    reflected_history = history if reflected == history.version else read_version(spark, job.history, reflected)
    assert shown[0] == max(reflected_history.snapshot_dates()), f"{how}: current is not the newest snapshot"
    assert current.columns == history.columns, f"{how}: current columns {current.columns}"
    assert_same_rows(
        current.rows,
        reflected_history.rows_for(shown[0]),
        current.columns,
        f"{how}: current vs history version {reflected} for {shown[0]}",
    )
    return reflected


@pytest.mark.parametrize("step", [*FAULT_STEPS, EXTERNAL_KILL])
def test_killed_run_leaves_a_consistent_table_and_the_next_run_heals_it(
    spark: SparkSession,
    baseline: Baseline,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    step: str,
) -> None:
    job = copy_job_dir(baseline.after_a, tmp_path / "job", baseline.payments)

    if step == EXTERNAL_KILL:
        seed = random.randrange(2**32)
        killed, how = kill_during_history_write(job, random.Random(seed))
        how += f" (random seed {seed})"
    else:
        killed, how = run_job(job, "--as-of", AS_OF_B, fault_at=step, name=step), f"RFM_FAULT_AT={step}"
    killed.assert_sigkilled()
    # Asked for only now, so that the reference run (started with the baseline) ran alongside this kill.
    expected: Expected = request.getfixturevalue("expected")

    # The killed run left exactly the previous state or exactly the new one, and a consistent current table.
    history = read_version(spark, job.history)
    state = history_state(history, baseline, expected, how)
    request.node.user_properties.append(("history_state_after_kill", f"{state} ({how})"))
    if step in FAULT_STEPS:
        assert state == FAULT_STEPS[step], f"{how}: the history table is in the {state} state"
    reflected = assert_current_consistent(spark, job, history, how)
    if step in ("after_validation", "before_history_commit", "after_history_commit"):
        assert reflected == baseline.previous.version, f"{how}: the current table moved to version {reflected}"
    elif step == "after_current_commit":
        assert reflected == expected.history.version, f"{how}: the current table reflects version {reflected}"

    # The next run (same as_of, no fault) completes and leaves what the uninterrupted run left.
    rerun = run_job(job, "--as-of", AS_OF_B, name=f"rerun-after-{step}").assert_ok()
    how = f"rerun after {how}"
    healed = read_version(spark, job.history)
    assert_same_table(healed, expected.history, f"{how}: history")
    assert_no_duplicate_keys(healed, f"{how}: history")
    assert rerun.summary["current_history_version"] == healed.version, rerun.report()
    assert assert_current_consistent(spark, job, healed, how) == healed.version, f"{how}: current table is stale"
    assert_same_table(read_version(spark, job.current), expected.current, f"{how}: current")
