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
    newest_snapshot: str | None = None
    users_by_segment: dict[str, int] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
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

    def readable(self) -> str:
        """The multi-line summary for people (the JSON line is for machines)."""
        lines = [
            f"run {self.run_id}: {self.status}, mode {self.mode}, as_of {self.as_of}",
            f"  input rows {self.input_rows}, valid {self.valid_rows}, duplicates collapsed "
            f"{self.duplicates_collapsed}, rejected {self.rejected_rows} {self.rejects_by_reason or ''}".rstrip(),
        ]
        if self.snapshots_written:
            lines.append(
                f"  snapshots written: {len(self.snapshots_written)} ({self.snapshots_written[0]} .. "
                f"{self.snapshots_written[-1]}), {self.rows_written} rows, history version {self.history_version}"
            )
        if self.users_by_segment:
            lines.append(f"  users per segment in the newest snapshot ({self.newest_snapshot}):")
            width = max(len(name) for name in self.users_by_segment)
            for name, users in sorted(self.users_by_segment.items(), key=lambda item: -item[1]):
                lines.append(f"    {name:<{width}}  {users:>8}")
        for name, path in self.tables.items():
            lines.append(f"  {name:<8} {path}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
