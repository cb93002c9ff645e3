"""The run summary: one JSON line on stdout for every run, failed ones included."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RunSummary:
    run_id: str
    status: str = "running"  # succeeded | failed | dry_run
    exit_code: int | None = None
    error: str | None = None
    as_of: str | None = None
    mode: str | None = None
    snapshots_written: list[str] = field(default_factory=list)
    rows_written: int | None = None
    input_rows: int | None = None
    valid_rows: int | None = None
    duplicates_collapsed: int | None = None
    rejected_rows: int | None = None
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    source_version: int | None = None
    history_version: int | None = None
    current_history_version: int | None = None
    duration_seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.duration_seconds[name] = round(time.monotonic() - started, 3)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=False, default=str)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
