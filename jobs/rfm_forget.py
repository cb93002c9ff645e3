"""Entry point `rfm-forget`: delete users from every table the job writes (right to be forgotten).

    rfm-forget --config FILE --user-id ID [--user-id ID ...] [--master URL]

Exit codes as rfm-snapshot: 0 success, 1 internal error, 2 usage or configuration error, 4 write conflict.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jobs.rfm_snapshot import EXIT_CONFLICT, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, Parser, UsageError, configure_logging
from rfm.config import ConfigError, load_config
from rfm.delta_io import WriteConflictError
from rfm.forget import forget_users
from rfm.session import build_session

log = logging.getLogger("rfm.forget")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rfm-forget", description="Delete users from the history, current and rejects tables.")
    parser.add_argument("--config", required=True, metavar="FILE", help="the job's YAML configuration file")
    parser.add_argument("--user-id", dest="user_ids", action="append", required=True, metavar="ID", help="repeatable")
    parser.add_argument("--master", metavar="URL", help="Spark master")
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        config = load_config(args.config)
        if any(not u.strip() for u in args.user_ids):
            raise UsageError("--user-id must not be empty")
    except (UsageError, ConfigError) as exc:
        print(f"rfm-forget: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    spark = build_session(args.master or config.spark.master, "rfm-forget", config.spark.conf)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        deleted = forget_users(spark, config, args.user_ids)
    except ValueError as exc:
        print(f"rfm-forget: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WriteConflictError as exc:
        print(f"rfm-forget: write conflict: {exc}", file=sys.stderr)
        return EXIT_CONFLICT
    except Exception as exc:
        log.exception("internal error")
        print(f"rfm-forget: internal error: {type(exc).__name__}", file=sys.stderr)
        return EXIT_INTERNAL
    print(json.dumps({"status": "succeeded", "users": len(args.user_ids), "deleted_rows": deleted}), flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
