"""`spark-submit jobs/rfm_snapshot.py` works as the README says: Delta jars from --packages, the master from
the submit command, the same main(argv), exit codes and JSON summary as the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from process_helpers import payment_rows, read_version, write_payments
from pyspark.sql import SparkSession

from rfm.config import parse_config
from rfm.job import new_run_id, run_job
from rfm.periods import parse_as_of
from rfm.plan import RunRequest
from rfm.summary import RunSummary

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
AS_OF = "2024-04-10T08:00:00Z"


def submit(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # spark-submit finds pyspark through python
    env["PYSPARK_PYTHON"] = sys.executable
    command = [
        str(VENV_BIN / "spark-submit"),
        *("--master", "local[1]", "--packages", "io.delta:delta-spark_2.13:4.0.1"),
        *("--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension"),
        *("--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"),
        *("--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=2"),
        str(REPO / "jobs" / "rfm_snapshot.py"),
        "--config",
        str(config),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.mark.slow
def test_spark_submit_runs_the_job_like_the_console_script(spark: SparkSession, tmp_path: Path) -> None:
    source = write_payments(spark, tmp_path / "payments", payment_rows())
    raw = {
        "source": {"format": "parquet", "path": str(source)},
        "output": {
            "history_path": str(tmp_path / "submitted" / "history"),
            "current_path": str(tmp_path / "submitted" / "current"),
            "rejects_path": str(tmp_path / "submitted" / "rejects"),
        },
    }  # no spark.master: the submit command's master stands
    config = tmp_path / "job.yml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")

    result = submit(config, "--as-of", AS_OF)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "succeeded" and summary["mode"] == "full"
    assert summary["snapshots_written"] == ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]

    in_process = {k: str(tmp_path / "in_process" / k) for k in ("history", "current", "rejects")}
    local = parse_config(
        {**raw, "output": {f"{k}_path": v for k, v in in_process.items()}},
    )
    run_job(spark, local, RunRequest(parse_as_of(AS_OF, "UTC")), RunSummary(run_id=new_run_id()))
    submitted_rows = read_version(spark, tmp_path / "submitted" / "history").rows
    assert submitted_rows == read_version(spark, Path(in_process["history"])).rows
    assert len(submitted_rows) > 0

    bad = submit(config, "--from", "2024-05-01", "--to", "2024-04-01")
    assert bad.returncode == 2
    # spark-submit's Python runner merges the driver's stderr into its stdout.
    lines = bad.stdout.strip().splitlines()
    assert "rfm-snapshot: error: --to 2024-04-01 is before --from 2024-05-01" in lines
    assert json.loads(lines[-1])["exit_code"] == 2
