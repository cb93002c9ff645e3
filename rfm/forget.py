"""Right to be forgotten: delete users from every table the job writes."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rfm import delta_io
from rfm.config import JobConfig

log = logging.getLogger(__name__)


def _ids_for(table: DeltaTable, user_ids: Sequence[str]) -> list[str] | list[int]:
    """The ids typed like the table's user_id column (BIGINT histories get integers)."""
    user_type = table.toDF().schema["user_id"].dataType
    if isinstance(user_type, T.StringType):
        return list(user_ids)
    try:
        return [int(u) for u in user_ids]
    except ValueError:
        raise ValueError(f"user_id is {user_type.simpleString()} in the history table; got {list(user_ids)}") from None


def _delete(spark: SparkSession, path: str, user_ids: Sequence[str], retries: int) -> int:
    if not DeltaTable.isDeltaTable(spark, path):
        return 0

    def attempt() -> int:
        table = DeltaTable.forPath(spark, path)
        table.delete(F.col("user_id").isin(_ids_for(table, user_ids)))
        metrics = table.history(1).select("operationMetrics").first()
        return int(((metrics[0] if metrics else None) or {}).get("numDeletedRows", 0))

    return delta_io.with_commit_retries(attempt, f"delete from {path}", retries)


def forget_users(spark: SparkSession, config: JobConfig, user_ids: Sequence[str]) -> dict[str, int]:
    """Delete the users' rows from history, rejects and current; returns deleted rows per table.

    The current table is rebuilt from the new history version rather than edited, so it stays exactly the
    newest snapshot of the history. Old files keep the data until VACUUM removes them (see the README).
    """
    out = config.output
    deleted = {
        "history": _delete(spark, out.history_path, user_ids, out.commit_retries),
        # The rejects table holds original values as strings, whatever the source type.
        "rejects": _delete(spark, out.rejects_path, [str(u) for u in user_ids], out.commit_retries),
    }
    if DeltaTable.isDeltaTable(spark, out.history_path):
        before = (
            spark.read.format("delta").load(out.current_path).count()
            if DeltaTable.isDeltaTable(spark, out.current_path)
            else 0
        )
        delta_io.refresh_current_with_retries(spark, out.history_path, out.current_path, out.commit_retries)
        deleted["current"] = before - spark.read.format("delta").load(out.current_path).count()
    for name, rows in deleted.items():
        log.info("deleted %d row(s) from %s", rows, name)
    return deleted
