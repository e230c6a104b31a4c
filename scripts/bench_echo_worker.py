"""The external worker scripts/bench measures: kind ``bench-echo`` answers each task with its
payload, through the Python SDK (``python -m tasknode worker bench_echo_worker:worker``)."""

import tasknode

# The servers and token come from the command line (--servers, TASKNODE_TOKEN).
worker = tasknode.Worker("127.0.0.1:7001")


@worker.task("bench-echo")
def echo(payload, task):
    return payload
