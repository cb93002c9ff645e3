"""YAML configuration -> a validated, frozen `JobConfig`. The only module that knows the YAML keys."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Grain = Literal["day", "week", "month", "quarter"]

DEFAULT_THRESHOLDS = (0.2, 0.4, 0.6, 0.8)

# SPEC §4.3, rows R, columns F.
DEFAULT_SEGMENTS: dict[str, tuple[str, ...]] = {
    "Champions": ("5,4", "5,5"),
    "Loyal Customers": ("4,4", "4,5", "3,4", "3,5"),
    "Potential Loyalists": ("5,2", "5,3", "4,2", "4,3"),
    "New Customers": ("5,1",),
    "Promising": ("4,1",),
    "Need Attention": ("3,3",),
    "About to Sleep": ("3,1", "3,2"),
    "At Risk": ("2,3", "2,4", "1,3", "1,4"),
    "Cannot Lose Them": ("2,5", "1,5"),
    "Hibernating": ("2,1", "2,2", "1,1", "1,2"),
}

_IDENTIFIER_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CELL = re.compile(r"^\s*([1-5])\s*,\s*([1-5])\s*$")


class ConfigError(ValueError):
    """The configuration file or the command line asks for something invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_table_name(name: str | None) -> str | None:
    """A catalog name is up to three dot-separated identifiers; anything else never reaches SQL text."""
    if name is None:
        return None
    parts = name.split(".")
    if not 1 <= len(parts) <= 3 or not all(_IDENTIFIER_PART.fullmatch(part) for part in parts):
        raise ValueError(f"{name!r} is not a table name of the form [catalog.][schema.]table (letters, digits, _)")
    return name


def _absolute(path: str | None) -> str | None:
    if path is None or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):  # a URI (s3://, dbfs:, file:) stays as is
        return path
    return str(Path(path).expanduser().resolve())


class SourceColumns(_Section):
    user_id: str = "user_id"
    payment_id: str = "payment_id"
    payment_date: str = "payment_date"
    payment_amount: str = "payment_amount"


class SourceConfig(_Section):
    format: Literal["parquet", "delta", "csv", "table"]
    path: str | None = None
    table: str | None = None
    columns: SourceColumns = SourceColumns()

    _check_table = field_validator("table")(_check_table_name)
    _absolute_path = field_validator("path")(_absolute)

    @model_validator(mode="after")
    def _location_matches_format(self) -> SourceConfig:
        if self.format == "table":
            if self.table is None or self.path is not None:
                raise ValueError("format 'table' needs 'table' (a catalog name) and no 'path'")
        elif self.path is None or self.table is not None:
            raise ValueError(f"format {self.format!r} needs 'path' and no 'table'")
        return self


class PeriodsConfig(_Section):
    grain: Grain = "month"
    timezone: str = "UTC"
    start: date | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')") from exc
        return value


class ScoringConfig(_Section):
    thresholds: tuple[float, float, float, float] = DEFAULT_THRESHOLDS
    segments: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(DEFAULT_SEGMENTS))
    # Float amounts are cast to DECIMAL(38, money_scale) before summing; decimal input keeps its own scale.
    money_scale: Annotated[int, Field(ge=0, le=18)] = 6

    @field_validator("thresholds", mode="before")
    @classmethod
    def _four_values(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and len(value) != 4:
            raise ValueError(f"must be exactly four values, got {len(value)}")
        return value

    @field_validator("thresholds")
    @classmethod
    def _ascending_in_unit_interval(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(0 < t < 1 for t in value) or list(value) != sorted(set(value)):
            raise ValueError(f"must be four strictly ascending values in (0, 1), got {list(value)}")
        return value

    @field_validator("segments")
    @classmethod
    def _covers_matrix_once(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        seen: dict[tuple[int, int], str] = {}
        for name, cells in value.items():
            if not name.strip():
                raise ValueError("segment names must not be empty")
            for cell in cells:
                match = _CELL.match(cell)
                if match is None:
                    raise ValueError(f"segment {name!r}: cell {cell!r} is not 'R,F' with R and F in 1..5")
                key = (int(match[1]), int(match[2]))
                if key in seen:
                    raise ValueError(f"cell {key[0]},{key[1]} is doubled: in {seen[key]!r} and {name!r}")
                seen[key] = name
        missing = [f"{r},{f}" for r in range(1, 6) for f in range(1, 6) if (r, f) not in seen]
        if missing:
            raise ValueError(f"cells missing from the segment matrix: {', '.join(missing)}")
        return value

    def segment_by_cell(self) -> dict[tuple[int, int], str]:
        """(recency_score, frequency_score) -> segment name."""
        cells: dict[tuple[int, int], str] = {}
        for name, segment_cells in self.segments.items():
            for cell in segment_cells:
                match = _CELL.match(cell)
                assert match is not None  # validated above
                cells[(int(match[1]), int(match[2]))] = name
        return cells


class OutputConfig(_Section):
    history_path: str
    current_path: str
    rejects_path: str
    commit_retries: Annotated[int, Field(ge=0, le=20)] = 5

    _absolute_paths = field_validator("history_path", "current_path", "rejects_path")(_absolute)

    @model_validator(mode="after")
    def _distinct_paths(self) -> OutputConfig:
        paths = [self.history_path, self.current_path, self.rejects_path]
        if len(set(paths)) != len(paths):
            raise ValueError("history_path, current_path and rejects_path must be three different tables")
        return self


class QualityConfig(_Section):
    max_reject_ratio: Annotated[float, Field(ge=0, le=1)] = 0.01
    allow_negative_amounts: bool = False


class SparkConfig(_Section):
    master: str | None = None
    app_name: str = "rfm-snapshot"
    conf: dict[str, str] = Field(default_factory=dict)


class JobConfig(_Section):
    source: SourceConfig
    periods: PeriodsConfig = PeriodsConfig()
    scoring: ScoringConfig = ScoringConfig()
    output: OutputConfig
    quality: QualityConfig = QualityConfig()
    spark: SparkConfig = SparkConfig()

    def definitions(self) -> dict[str, str]:
        """What built the history; stored as table properties so one table never mixes two definitions.

        The money scale is added by the writer, since decimal input keeps the source's own scale.
        """
        segments = self.scoring.segment_by_cell()
        matrix = ";".join(f"{r},{f}={segments[(r, f)]}" for r in range(5, 0, -1) for f in range(1, 6))
        return {
            "rfm.grain": self.periods.grain,
            "rfm.timezone": self.periods.timezone,
            "rfm.thresholds": ",".join(repr(t) for t in self.scoring.thresholds),
            "rfm.segments": matrix,
        }


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key")
        elif item["type"] == "missing":
            lines.append(f"{where}: required key is missing")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message}")
    return "; ".join(lines)


def parse_config(raw: Any, origin: str = "configuration") -> JobConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping of sections at the top level")
    try:
        return JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {_describe(exc)}") from None


def load_config(path: str | Path) -> JobConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_config(raw, origin=str(path))
