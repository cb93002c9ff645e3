"""The command line fails fast and cleanly on bad arguments and bad configuration, before Spark starts.

Each case runs the real entry point in a subprocess and checks what a scheduler sees: exit code 2, one
`rfm-snapshot: error:` line on stderr (no traceback, no Spark/Ivy start-up output), and a JSON run summary
as the last line of stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

VALID_CONFIG = """\
source: {format: parquet, path: data/payments}
output: {history_path: data/history, current_path: data/current, rejects_path: data/rejects}
"""

DOUBLED_CELL_CONFIG = """\
source: {format: parquet, path: data/payments}
output: {history_path: data/history, current_path: data/current, rejects_path: data/rejects}
scoring:
  segments:
    Champions: ["5,4", "5,5"]
    Loyal Customers: ["4,4", "4,5", "3,4", "3,5", "5,5"]
    Potential Loyalists: ["5,2", "5,3", "4,2", "4,3"]
    New Customers: ["5,1"]
    Promising: ["4,1"]
    Need Attention: ["3,3"]
    About to Sleep: ["3,1", "3,2"]
    At Risk: ["2,3", "2,4", "1,3", "1,4"]
    Cannot Lose Them: ["2,5", "1,5"]
    Hibernating: ["2,1", "2,2", "1,1", "1,2"]
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs.rfm_snapshot", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def write_config(tmp_path: Path, text: str, name: str = "job.yml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    return write_config(tmp_path, VALID_CONFIG)


def assert_usage_error(result: subprocess.CompletedProcess[str], *mentions: str) -> str:
    """Exit 2, before Spark, one error line on stderr naming `mentions`, a failed JSON summary on stdout."""
    assert "SparkContext" not in result.stderr, "Spark was started before the usage error was reported"
    assert "ivy" not in result.stderr.lower(), "Spark dependencies were resolved before the usage error"
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    stderr_lines = result.stderr.splitlines()
    assert len(stderr_lines) == 1, result.stderr
    line = stderr_lines[0]
    assert line.startswith("rfm-snapshot: error:")
    for text in mentions:
        assert text in line

    stdout_lines = result.stdout.strip().splitlines()
    assert stdout_lines, "no run summary on stdout"
    summary: dict[str, Any] = json.loads(stdout_lines[-1])
    assert summary["status"] == "failed"
    assert summary["exit_code"] == 2
    assert summary["error"] == line
    return line


def test_missing_config_option() -> None:
    assert_usage_error(run_cli(), "--config")


def test_unknown_option(config_file: str) -> None:
    assert_usage_error(run_cli("--config", config_file, "--bogus-option"), "--bogus-option")


def test_full_refresh_with_from(config_file: str) -> None:
    assert_usage_error(run_cli("--config", config_file, "--full-refresh", "--from", "2024-01-01"), "--full-refresh")


def test_to_without_from(config_file: str) -> None:
    assert_usage_error(run_cli("--config", config_file, "--to", "2024-03-31"), "--to", "--from")


@pytest.mark.parametrize("as_of", ["yesterday", "2024-13-01", "2024-02-30T10:00:00"])
def test_bad_as_of(config_file: str, as_of: str) -> None:
    assert_usage_error(run_cli("--config", config_file, "--as-of", as_of), "--as-of", as_of)


@pytest.mark.parametrize("option", ["--from", "--to"])
def test_bad_date_option(config_file: str, option: str) -> None:
    args = ["--from", "2024-13-01"] if option == "--from" else ["--from", "2024-01-01", "--to", "31/03/2024"]
    bad = args[-1]
    assert_usage_error(run_cli("--config", config_file, *args), option, bad)


def test_nonexistent_config_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yml")
    assert_usage_error(run_cli("--config", missing), missing)


def test_config_with_unknown_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, VALID_CONFIG + "periods: {grian: week}\n")
    assert_usage_error(run_cli("--config", path), "periods.grian", "unknown key")


def test_config_with_doubled_matrix_cell(tmp_path: Path) -> None:
    path = write_config(tmp_path, DOUBLED_CELL_CONFIG)
    assert_usage_error(run_cli("--config", path), "5,5", "doubled")


def test_config_with_invalid_timezone(tmp_path: Path) -> None:
    path = write_config(tmp_path, VALID_CONFIG + "periods: {timezone: Mars/Olympus}\n")
    assert_usage_error(run_cli("--config", path), "periods.timezone", "Mars/Olympus")


def test_config_with_yaml_syntax_error(tmp_path: Path) -> None:
    # PyYAML's messages span several lines (with a caret under the column); stderr must still be one line.
    path = write_config(tmp_path, "source: [unclosed\n")
    assert_usage_error(run_cli("--config", path), path)


def test_help_lists_the_options() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "SparkContext" not in result.stderr
    assert "Traceback" not in result.stderr
    for option in ("--config", "--as-of", "--full-refresh", "--from", "--to", "--master", "--dry-run"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "the following arguments are required: --user-id"),
        (["--user-id", " "], "--user-id must not be empty"),
    ],
)
def test_forget_refuses_bad_arguments_before_spark_starts(tmp_path: Path, extra: list[str], message: str) -> None:
    config = write_config(tmp_path, VALID_CONFIG)
    result = subprocess.run(
        [sys.executable, "-m", "jobs.rfm_forget", "--config", config, *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"rfm-forget: error: {message}"]
