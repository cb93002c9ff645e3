"""Deterministic crash points for the crash-safety tests.

With RFM_FAULT_AT=<step>, the process kills its whole process group (Python and the Spark JVM) with
SIGKILL when it reaches <step>: nothing gets to clean up, as when a node dies. Unset, this does nothing.
"""

from __future__ import annotations

import os
import signal

STEPS = ("after_validation", "before_history_commit", "after_history_commit", "after_current_commit")


def crash_point(step: str) -> None:
    if os.environ.get("RFM_FAULT_AT") == step:
        os.killpg(os.getpgid(0), signal.SIGKILL)
