"""Workers the tests start as processes (`python -m tasknode worker workers:<name>`).

Each reads its settings from the environment: RUN_LOG (a file each run appends a line to),
LEASE_LOG (where a slow run writes its lease), MODE.
"""

import hashlib
import os
import tempfile
import time

import tasknode

counting = tasknode.Worker(None)


def _note(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


@counting.task("py-count")
def count(payload, task):
    _note(os.environ["RUN_LOG"], payload.decode())
    return payload.upper()


dying = tasknode.Worker(None)


@dying.task("py-kill")
def slow_or_fast(payload, task):
    if os.environ.get("MODE") == "slow":
        _note(os.environ["LEASE_LOG"], task.lease)
        time.sleep(600)
    _note(os.environ["RUN_LOG"], f"{task.id} {task.attempt}")
    return "finished by " + os.environ.get("MODE", "?")


streaming = tasknode.Worker(None)


@streaming.task("py-big", stream=True)
def digest_and_reverse_blocks(payload, task):
    """Answers the payload with each 1 MiB block's bytes reversed, streamed through a
    temporary file; neither side is held in memory."""
    out = tempfile.TemporaryFile()
    digest = hashlib.sha256()
    while True:
        block = payload.read(1 << 20)
        if not block:
            break
        digest.update(block)
        out.write(block[::-1])
    _note(os.environ["RUN_LOG"], digest.hexdigest())
    out.seek(0)
    return out
