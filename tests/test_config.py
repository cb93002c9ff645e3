"""Pure-Python tests of configuration parsing and validation (`rfm.config`). No Spark."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from rfm.config import ConfigError, JobConfig, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]

MINIMAL: dict[str, Any] = {
    "source": {"format": "parquet", "path": "/data/payments"},
    "output": {"history_path": "/out/history", "current_path": "/out/current", "rejects_path": "/out/rejects"},
}

# SPEC §4.3, written out cell by cell from the table: (R, F) -> segment.
SPEC_MATRIX: dict[tuple[int, int], str] = {
    (5, 1): "New Customers",
    (5, 2): "Potential Loyalists",
    (5, 3): "Potential Loyalists",
    (5, 4): "Champions",
    (5, 5): "Champions",
    (4, 1): "Promising",
    (4, 2): "Potential Loyalists",
    (4, 3): "Potential Loyalists",
    (4, 4): "Loyal Customers",
    (4, 5): "Loyal Customers",
    (3, 1): "About to Sleep",
    (3, 2): "About to Sleep",
    (3, 3): "Need Attention",
    (3, 4): "Loyal Customers",
    (3, 5): "Loyal Customers",
    (2, 1): "Hibernating",
    (2, 2): "Hibernating",
    (2, 3): "At Risk",
    (2, 4): "At Risk",
    (2, 5): "Cannot Lose Them",
    (1, 1): "Hibernating",
    (1, 2): "Hibernating",
    (1, 3): "At Risk",
    (1, 4): "At Risk",
    (1, 5): "Cannot Lose Them",
}

# The same matrix in the configuration's own shape (segment -> cells), as a user would write it.
SPEC_SEGMENTS: dict[str, list[str]] = {
    "Champions": ["5,4", "5,5"],
    "Loyal Customers": ["4,4", "4,5", "3,4", "3,5"],
    "Potential Loyalists": ["5,2", "5,3", "4,2", "4,3"],
    "New Customers": ["5,1"],
    "Promising": ["4,1"],
    "Need Attention": ["3,3"],
    "About to Sleep": ["3,1", "3,2"],
    "At Risk": ["2,3", "2,4", "1,3", "1,4"],
    "Cannot Lose Them": ["2,5", "1,5"],
    "Hibernating": ["2,1", "2,2", "1,1", "1,2"],
}


def config_with(**sections: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(MINIMAL)
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def error_of(raw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return str(info.value)


def segments_with(**changes: list[str]) -> dict[str, list[str]]:
    segments = copy.deepcopy(SPEC_SEGMENTS)
    segments.update(changes)
    return segments


# --- valid configuration and defaults --------------------------------------------------------------------


def test_minimal_config_and_defaults() -> None:
    config = parse_config(MINIMAL)
    assert isinstance(config, JobConfig)
    assert config.source.format == "parquet"
    assert config.source.path == "/data/payments"
    assert config.source.table is None
    assert config.source.columns.user_id == "user_id"
    assert config.source.columns.payment_id == "payment_id"
    assert config.source.columns.payment_date == "payment_date"
    assert config.source.columns.payment_amount == "payment_amount"
    assert config.periods.grain == "month"
    assert config.periods.timezone == "UTC"
    assert config.periods.start is None
    assert config.scoring.thresholds == (0.2, 0.4, 0.6, 0.8)
    assert config.scoring.money_scale == 6
    assert config.output.history_path == "/out/history"
    assert config.output.current_path == "/out/current"
    assert config.output.rejects_path == "/out/rejects"
    assert config.quality.max_reject_ratio == 0.01
    assert config.quality.allow_negative_amounts is False
    assert config.spark.master is None
    assert config.spark.conf == {}


def test_default_matrix_equals_spec_table() -> None:
    assert parse_config(MINIMAL).scoring.segment_by_cell() == SPEC_MATRIX


def test_configured_spec_matrix_gives_the_same_cells() -> None:
    config = parse_config(config_with(scoring={"segments": SPEC_SEGMENTS}))
    assert config.scoring.segment_by_cell() == SPEC_MATRIX


def test_custom_matrix() -> None:
    cells = [f"{r},{f}" for r in range(1, 6) for f in range(1, 6) if (r, f) != (5, 5)]
    config = parse_config(config_with(scoring={"segments": {"Best": ["5,5"], "Rest": cells}}))
    by_cell = config.scoring.segment_by_cell()
    assert len(by_cell) == 25
    assert by_cell[(5, 5)] == "Best"
    assert by_cell[(1, 1)] == "Rest"
    assert by_cell[(5, 4)] == "Rest"


def test_full_config_values_are_kept() -> None:
    config = parse_config(
        config_with(
            source={"columns": {"user_id": "customer", "payment_amount": "amount_eur"}},
            periods={"grain": "week", "timezone": "America/New_York", "start": "2024-01-01"},
            scoring={"thresholds": [0.1, 0.3, 0.5, 0.9], "money_scale": 2},
            quality={"max_reject_ratio": 0.05, "allow_negative_amounts": True},
            spark={"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": "4"}},
        )
    )
    assert config.source.columns.user_id == "customer"
    assert config.source.columns.payment_amount == "amount_eur"
    assert config.source.columns.payment_id == "payment_id"  # unspecified keeps its default
    assert config.periods.grain == "week"
    assert config.periods.timezone == "America/New_York"
    assert config.periods.start == date(2024, 1, 1)
    assert config.scoring.thresholds == (0.1, 0.3, 0.5, 0.9)
    assert config.scoring.money_scale == 2
    assert config.quality.max_reject_ratio == 0.05
    assert config.quality.allow_negative_amounts is True
    assert config.spark.master == "local[2]"
    assert config.spark.conf == {"spark.sql.shuffle.partitions": "4"}


@pytest.mark.parametrize("grain", ["day", "week", "month", "quarter"])
def test_every_grain_is_accepted(grain: str) -> None:
    assert parse_config(config_with(periods={"grain": grain})).periods.grain == grain


def test_catalog_table_source() -> None:
    config = parse_config(config_with(source={"format": "table", "table": "main.sales.payments", "path": None}))
    assert config.source.table == "main.sales.payments"
    assert config.source.path is None


def test_config_is_frozen() -> None:
    config = parse_config(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        config.periods.grain = "day"


# --- definitions (stored as table properties) ------------------------------------------------------------


def test_definitions_of_default_config() -> None:
    # The stored form of the matrix is read back from existing tables, so it is pinned here:
    # rows R = 5..1, columns F = 1..5, "R,F=segment" joined by ";".
    expected_segments = (
        "5,1=New Customers;5,2=Potential Loyalists;5,3=Potential Loyalists;5,4=Champions;5,5=Champions;"
        "4,1=Promising;4,2=Potential Loyalists;4,3=Potential Loyalists;4,4=Loyal Customers;4,5=Loyal Customers;"
        "3,1=About to Sleep;3,2=About to Sleep;3,3=Need Attention;3,4=Loyal Customers;3,5=Loyal Customers;"
        "2,1=Hibernating;2,2=Hibernating;2,3=At Risk;2,4=At Risk;2,5=Cannot Lose Them;"
        "1,1=Hibernating;1,2=Hibernating;1,3=At Risk;1,4=At Risk;1,5=Cannot Lose Them"
    )
    assert parse_config(MINIMAL).definitions() == {
        "rfm.grain": "month",
        "rfm.timezone": "UTC",
        "rfm.thresholds": "0.2,0.4,0.6,0.8",
        "rfm.segments": expected_segments,
    }


def test_definitions_ignore_how_the_same_matrix_is_written() -> None:
    # Same cells, segments in another order, cells reordered and spaced: the same definition.
    reordered = {name: [c.replace(",", " , ") for c in reversed(cells)] for name, cells in SPEC_SEGMENTS.items()}
    reordered = dict(reversed(list(reordered.items())))
    written_out = parse_config(config_with(scoring={"segments": reordered}))
    assert written_out.definitions() == parse_config(MINIMAL).definitions()


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("periods", {"grain": "week"}, "rfm.grain"),
        ("periods", {"timezone": "Europe/Berlin"}, "rfm.timezone"),
        ("scoring", {"thresholds": [0.25, 0.5, 0.75, 0.9]}, "rfm.thresholds"),
        (
            "scoring",
            {"segments": segments_with(Champions=["5,4"], Hibernating=["2,1", "2,2", "1,1", "1,2", "5,5"])},
            "rfm.segments",
        ),
    ],
)
def test_definitions_change_with_each_setting(section: str, values: dict[str, Any], key: str) -> None:
    default = parse_config(MINIMAL).definitions()
    changed = parse_config(config_with(**{section: values})).definitions()
    assert changed[key] != default[key]
    assert {k: v for k, v in changed.items() if k != key} == {k: v for k, v in default.items() if k != key}


# --- unknown and missing keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ((), "bogus_key: unknown key"),
        (("source",), "source.bogus_key: unknown key"),
        (("source", "columns"), "source.columns.bogus_key: unknown key"),
        (("periods",), "periods.bogus_key: unknown key"),
        (("scoring",), "scoring.bogus_key: unknown key"),
        (("output",), "output.bogus_key: unknown key"),
        (("quality",), "quality.bogus_key: unknown key"),
        (("spark",), "spark.bogus_key: unknown key"),
    ],
)
def test_unknown_key_at_every_level_is_named(where: tuple[str, ...], expected: str) -> None:
    raw = copy.deepcopy(MINIMAL)
    section = raw
    for name in where:
        section = section.setdefault(name, {})
    section["bogus_key"] = 1
    assert expected in error_of(raw)


def test_misspelled_key_is_named() -> None:
    message = error_of(config_with(periods={"grian": "day"}))
    assert "periods.grian" in message
    assert "unknown key" in message


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("source",), "source: required key is missing"),
        (("output",), "output: required key is missing"),
        (("source", "format"), "source.format: required key is missing"),
        (("output", "history_path"), "output.history_path: required key is missing"),
        (("output", "current_path"), "output.current_path: required key is missing"),
        (("output", "rejects_path"), "output.rejects_path: required key is missing"),
    ],
)
def test_missing_required_key_is_named(path: tuple[str, ...], expected: str) -> None:
    raw = copy.deepcopy(MINIMAL)
    section = raw
    for name in path[:-1]:
        section = section[name]
    del section[path[-1]]
    assert expected in error_of(raw)


# --- invalid values --------------------------------------------------------------------------------------


@pytest.mark.parametrize("grain", ["year", "Month", "months", "", 1])
def test_invalid_grain_names_key_and_allowed_values(grain: Any) -> None:
    message = error_of(config_with(periods={"grain": grain}))
    assert "periods.grain" in message
    for allowed in ("day", "week", "month", "quarter"):
        assert allowed in message


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "utc", "America/New York", "../../etc/passwd", "+02:00"])
def test_invalid_timezone(zone: str) -> None:
    message = error_of(config_with(periods={"timezone": zone}))
    assert "periods.timezone" in message
    assert "time zone" in message


def test_invalid_periods_start() -> None:
    assert "periods.start" in error_of(config_with(periods={"start": "2024-13-01"}))


@pytest.mark.parametrize(
    "thresholds",
    [
        [0.2, 0.6, 0.4, 0.8],  # not ascending
        [0.2, 0.2, 0.6, 0.8],  # not strictly ascending
        [0.8, 0.6, 0.4, 0.2],  # descending
        [0.0, 0.4, 0.6, 0.8],  # 0 is outside (0, 1)
        [0.2, 0.4, 0.6, 1.0],  # 1 is outside (0, 1)
        [-0.2, 0.4, 0.6, 0.8],
        [0.2, 0.4, 0.6, 80],  # a percentage instead of a fraction
        [float("nan"), 0.4, 0.6, 0.8],
    ],
)
def test_thresholds_must_be_ascending_in_unit_interval(thresholds: list[float]) -> None:
    message = error_of(config_with(scoring={"thresholds": thresholds}))
    assert "scoring.thresholds" in message
    assert "ascending" in message


@pytest.mark.parametrize("thresholds", [[0.2, 0.4, 0.6], [0.2, 0.4, 0.6, 0.8, 0.9], [], 0.2])
def test_thresholds_must_be_four_values(thresholds: Any) -> None:
    assert "scoring.thresholds" in error_of(config_with(scoring={"thresholds": thresholds}))


def test_matrix_with_missing_cell_names_the_cell() -> None:
    segments = segments_with(Hibernating=["2,1", "2,2", "1,1"])  # 1,2 left out
    message = error_of(config_with(scoring={"segments": segments}))
    assert "scoring.segments" in message
    assert "missing" in message
    assert "1,2" in message


def test_matrix_with_several_missing_cells_names_them_all() -> None:
    segments = segments_with(Champions=[], Promising=[])  # 5,4 5,5 4,1
    message = error_of(config_with(scoring={"segments": segments}))
    for cell in ("5,4", "5,5", "4,1"):
        assert cell in message


def test_matrix_with_doubled_cell_names_the_cell_and_both_segments() -> None:
    segments = segments_with(**{"Loyal Customers": ["4,4", "4,5", "3,4", "3,5", "5,5"]})  # 5,5 is Champions'
    message = error_of(config_with(scoring={"segments": segments}))
    assert "scoring.segments" in message
    assert "5,5" in message
    assert "doubled" in message
    assert "Champions" in message
    assert "Loyal Customers" in message


def test_matrix_with_cell_doubled_in_another_spelling() -> None:
    segments = segments_with(Champions=["5,4", "5,5", " 5 , 5 "])
    message = error_of(config_with(scoring={"segments": segments}))
    assert "5,5" in message
    assert "doubled" in message


@pytest.mark.parametrize("cell", ["6,1", "0,3", "5-1", "5,", "a,b", "5,1,2", "51", ""])
def test_malformed_cell_is_named(cell: str) -> None:
    segments = segments_with(Champions=["5,4", "5,5", cell])
    message = error_of(config_with(scoring={"segments": segments}))
    assert "scoring.segments" in message
    assert repr(cell) in message


def test_cell_must_be_a_string() -> None:
    # YAML `Champions: [5,4, 5,5]` (unquoted, flow style) gives four integers.
    assert "scoring.segments" in error_of(config_with(scoring={"segments": segments_with(Champions=[5, 4, 5, 5])}))  # type: ignore[list-item]


def test_empty_segment_name_is_refused() -> None:
    segments = segments_with(Champions=["5,4"])
    segments[" "] = ["5,5"]
    assert "empty" in error_of(config_with(scoring={"segments": segments}))


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("scoring", {"money_scale": -1}, "scoring.money_scale"),
        ("scoring", {"money_scale": 19}, "scoring.money_scale"),
        ("quality", {"max_reject_ratio": 1.5}, "quality.max_reject_ratio"),
        ("quality", {"max_reject_ratio": -0.1}, "quality.max_reject_ratio"),
        ("output", {"commit_retries": -1}, "output.commit_retries"),
        ("source", {"format": "json"}, "source.format"),
    ],
)
def test_out_of_range_values_are_named(section: str, values: dict[str, Any], key: str) -> None:
    assert key in error_of(config_with(**{section: values}))


# --- source location and table names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        {"format": "parquet", "table": "db.payments"},  # file format with a table name
        {"format": "parquet", "path": "/data/p", "table": "db.payments"},  # both
        {"format": "delta"},  # neither
        {"format": "csv", "table": "db.payments"},
        {"format": "table", "path": "/data/p"},  # catalog table with a path
        {"format": "table", "path": "/data/p", "table": "db.payments"},
        {"format": "table"},
    ],
)
def test_source_format_and_location_must_match(source: dict[str, Any]) -> None:
    raw = copy.deepcopy(MINIMAL)
    raw["source"] = source
    message = error_of(raw)
    assert message.startswith("configuration: source")
    assert "format" in message


@pytest.mark.parametrize(
    "name",
    [
        "db.t; DROP TABLE x",
        "db.t --",
        "db.`t`",
        "db.t' OR '1'='1",
        "a.b.c.d",  # more than three parts
        "db..t",
        "1table",
        "db.t\n",  # `$` in a regex also matches before a trailing newline
        "db\n.t",
    ],
)
def test_table_name_that_is_not_an_identifier_is_rejected(name: str) -> None:
    message = error_of(config_with(source={"format": "table", "table": name, "path": None}))
    assert "source.table" in message


# --- paths -----------------------------------------------------------------------------------------------


def test_relative_paths_are_resolved_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = parse_config(
        {
            "source": {"format": "parquet", "path": "data/payments"},
            "output": {"history_path": "out/history", "current_path": "./out/current", "rejects_path": "out/../rej"},
        }
    )
    here = tmp_path.resolve()
    assert config.source.path == str(here / "data" / "payments")
    assert config.output.history_path == str(here / "out" / "history")
    assert config.output.current_path == str(here / "out" / "current")
    assert config.output.rejects_path == str(here / "rej")


@pytest.mark.parametrize("uri", ["s3://bucket/payments", "abfss://c@acct.dfs.core.windows.net/p", "dbfs:/mnt/payments"])
def test_uri_paths_are_left_alone(uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_config(config_with(source={"path": uri})).source.path == uri


def test_load_config_resolves_relative_paths_against_cwd_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    conf_file = conf_dir / "job.yml"
    conf_file.write_text(
        "source: {format: delta, path: data/payments}\n"
        "output: {history_path: data/h, current_path: data/c, rejects_path: data/r}\n",
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    config = load_config(conf_file)
    assert config.source.path == str(run_dir.resolve() / "data" / "payments")
    assert config.output.history_path == str(run_dir.resolve() / "data" / "h")


# --- YAML files ------------------------------------------------------------------------------------------


def test_load_repository_local_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(REPO / "conf" / "local.yml")
    assert config.source.format == "parquet"
    assert config.source.path == str(tmp_path.resolve() / "data" / "demo_payments")
    assert config.periods.grain == "month"
    assert config.spark.master == "local[2]"


def test_load_config_parses_yaml_types(tmp_path: Path) -> None:
    conf_file = tmp_path / "job.yml"
    conf_file.write_text(
        """
source:
  format: table
  table: main.sales.payments
periods:
  grain: quarter
  timezone: Europe/Berlin
  start: 2023-01-01
scoring:
  segments:
"""
        + "".join(f"    {name}: [{', '.join(repr(c) for c in cells)}]\n" for name, cells in SPEC_SEGMENTS.items())
        + """
output:
  history_path: /out/h
  current_path: /out/c
  rejects_path: /out/r
""",
        encoding="utf-8",
    )
    config = load_config(conf_file)
    assert config.source.table == "main.sales.payments"
    assert config.periods.grain == "quarter"
    assert config.periods.start == date(2023, 1, 1)
    assert config.scoring.segment_by_cell() == SPEC_MATRIX


def test_yaml_syntax_error_is_a_config_error(tmp_path: Path) -> None:
    conf_file = tmp_path / "broken.yml"
    conf_file.write_text("source: [format: parquet\noutput: {\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(conf_file)


@pytest.mark.parametrize("text", ["- source\n- output\n", "just a string\n", "42\n", "", "# only a comment\n"])
def test_non_mapping_yaml_is_a_config_error(text: str, tmp_path: Path) -> None:
    conf_file = tmp_path / "job.yml"
    conf_file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(conf_file)


def test_unsafe_yaml_tag_is_rejected(tmp_path: Path) -> None:
    # With an unsafe loader this tag would build {"grain": "day"} and the file would load; safe_load refuses it.
    conf_file = tmp_path / "job.yml"
    conf_file.write_text(
        "source: {format: parquet, path: /p}\n"
        "periods: !!python/object/apply:builtins.dict {kwds: {grain: day}}\n"
        "output: {history_path: /h, current_path: /c, rejects_path: /r}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(conf_file)
    assert "python/object" in str(info.value)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError, match=r"nope\.yml"):
        load_config(missing)


def test_config_file_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path)


def test_error_message_names_the_file(tmp_path: Path) -> None:
    conf_file = tmp_path / "job.yml"
    conf_file.write_text("source: {format: parquet, path: /p}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(conf_file)
    assert str(conf_file) in str(info.value)
    assert "output: required key is missing" in str(info.value)
