"""Builds the SparkSession: a local one with the Delta jars, or the one a cluster already started."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Delta rebuilds table state with this many tasks; its default (50) is for clusters, not 2 local cores.
    "spark.databricks.delta.snapshotPartitions": "4",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "2g",
    # Delta's own retry loop handles conflicts; no need for speculative duplicates of write tasks.
    "spark.speculation": "false",
}


def build_session(
    master: str | None = None,
    app_name: str = "rfm-snapshot",
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """Return a SparkSession able to read and write Delta tables.

    With no master and an active session (Databricks, spark-submit after the session was made), that session
    is reused. Otherwise a new one is built; `configure_spark_with_delta_pip` adds the Delta jars, which
    Spark resolves from Maven Central (cached in ~/.ivy2) on first use.
    """
    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        log.info("using the active SparkSession (Spark %s)", active.version)
        spark = active
    else:
        from delta import configure_spark_with_delta_pip

        builder = SparkSession.builder.appName(app_name)
        if master is not None:
            builder = builder.master(master)
        # Small-machine settings only for local masters; under spark-submit the cluster's own settings stand.
        local = LOCAL_CONF if master is not None and master.startswith("local") else {}
        for key, value in {**DELTA_CONF, **local, **dict(extra_conf or {})}.items():
            builder = builder.config(key, value)
        spark = configure_spark_with_delta_pip(builder).getOrCreate()
    # Every timestamp is an instant; the configured time zone is applied explicitly by the transforms.
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark
