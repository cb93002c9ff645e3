"""Entry point: `rfm-snapshot` (console script, Databricks wheel task) and `spark-submit jobs/rfm_snapshot.py`.

    rfm-snapshot --config FILE [--as-of ISO8601] [--full-refresh | --from DATE [--to DATE]]
                 [--master URL] [--dry-run]

Exit codes: 0 success, 1 internal error, 2 usage or configuration error, 3 input data error,
4 write conflict (concurrent writers, retries exhausted), 5 refused by the history table's state.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, date, datetime

from rfm.config import ConfigError, JobConfig, load_config
from rfm.delta_io import OutputDriftError, WriteConflictError
from rfm.job import InputDataError, new_run_id, run_job
from rfm.periods import parse_as_of
from rfm.plan import GuardError, NoPaymentsError, PlanError, RunRequest, check_request
from rfm.session import build_session
from rfm.source import SourceSchemaError
from rfm.summary import RunSummary

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_CONFLICT = 4
EXIT_REFUSED = 5

log = logging.getLogger("rfm.snapshot")


class UsageError(ValueError):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rfm-snapshot", description="Compute RFM segment snapshots into a Delta history table.")
    parser.add_argument("--config", required=True, metavar="FILE", help="YAML configuration file")
    parser.add_argument(
        "--as-of",
        metavar="ISO8601",
        help="the run's instant (default: now); without an offset it is wall-clock time in periods.timezone",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--full-refresh", action="store_true", help="recompute every snapshot, replace the table")
    mode.add_argument("--from", dest="date_from", type=_date, metavar="DATE", help="first snapshot_date to rewrite")
    parser.add_argument("--to", dest="date_to", type=_date, metavar="DATE", help="last snapshot_date (with --from)")
    parser.add_argument("--master", metavar="URL", help="Spark master (default: spark.master from config or cluster)")
    parser.add_argument("--dry-run", action="store_true", help="print the run plan; write nothing")
    return parser


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    run_started = datetime.now(UTC)
    summary = RunSummary(run_id=new_run_id())
    try:
        code = _run(sys.argv[1:] if argv is None else argv, summary, run_started)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    print(summary.to_json(), flush=True)
    return code


def _run(argv: list[str], summary: RunSummary, run_started: datetime) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.date_to is not None and args.date_from is None:
            raise UsageError("--to needs --from")
        config = load_config(args.config)
        timezone = config.periods.timezone
        as_of = parse_as_of(args.as_of, timezone) if args.as_of else run_started
        request = RunRequest(as_of, args.full_refresh, args.date_from, args.date_to)
        check_request(request, grain=config.periods.grain, timezone=timezone)
    except (UsageError, ConfigError, ValueError) as exc:
        return _fail(summary, EXIT_USAGE, f"rfm-snapshot: error: {exc}")
    log.info("configuration %s: %s", args.config, config.model_dump_json())

    try:
        return _execute(config, request, args, summary)
    except PlanError as exc:
        return _fail(summary, EXIT_USAGE, f"rfm-snapshot: error: {exc}")


def _execute(config: JobConfig, request: RunRequest, args: argparse.Namespace, summary: RunSummary) -> int:

    spark = build_session(args.master or config.spark.master, config.spark.app_name, config.spark.conf)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        plan = run_job(spark, config, request, summary, dry_run=args.dry_run)
    except (SourceSchemaError, InputDataError, NoPaymentsError) as exc:
        return _fail(summary, EXIT_INPUT, f"rfm-snapshot: input error: {exc}")
    except WriteConflictError as exc:
        return _fail(summary, EXIT_CONFLICT, f"rfm-snapshot: write conflict: {exc}")
    except (GuardError, OutputDriftError) as exc:
        return _fail(summary, EXIT_REFUSED, f"rfm-snapshot: refused: {exc}")
    except Exception as exc:
        log.exception("internal error")
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _fail(summary, EXIT_INTERNAL, f"rfm-snapshot: internal error: {type(exc).__name__}: {first_line}")
    if args.dry_run:
        summary.status = "dry_run"
        print("\n".join(plan.describe()), flush=True)
    else:
        summary.status = "succeeded"
        log.info("summary\n%s", summary.readable())
    summary.exit_code = EXIT_OK
    return EXIT_OK


def _fail(summary: RunSummary, code: int, message: str) -> int:

    summary.status, summary.exit_code, summary.error = "failed", code, message
    print(message, file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
