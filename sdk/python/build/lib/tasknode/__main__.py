"""``python -m tasknode worker module:worker``: run a worker from the shell.

The servers and token come from ``--servers``/``--token`` or ``TASKNODE_SERVERS`` /
``TASKNODE_TOKEN``; they override what the ``Worker`` object was made with.
"""

import argparse
import importlib
import logging
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tasknode")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run a Worker defined in a module")
    w.add_argument("target", help="module:attribute, e.g. thumbs:worker")
    w.add_argument("-c", "--concurrency", type=int, default=1)
    w.add_argument("--servers", default=os.environ.get("TASKNODE_SERVERS"))
    w.add_argument("--token", default=os.environ.get("TASKNODE_TOKEN"))
    w.add_argument("--tls-ca", default=os.environ.get("TASKNODE_TLS_CA"))
    w.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module, _, attr = args.target.partition(":")
    if not module or not attr:
        parser.error("the target is module:attribute, e.g. thumbs:worker")
    sys.path.insert(0, os.getcwd())
    worker = getattr(importlib.import_module(module), attr)
    if args.servers:
        worker.servers = args.servers
    if args.token:
        worker.token = args.token
    if args.tls_ca:
        worker.tls = args.tls_ca
    worker.run(concurrency=args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
