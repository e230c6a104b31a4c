"""Submitting tasks and reading them back."""

import base64
import io
import json
import time

from ._conn import Connection, ConnectionLost, ProtocolError

#: Payloads larger than this go up as a ``PUT`` body (streamed; binary-safe).
INLINE_MAX = 512 * 1024


class TaskFailed(Exception):
    """A task ended without a result (``failed``, ``dead`` or ``cancelled``)."""

    def __init__(self, view):
        super().__init__(f"task {view.id} is {view.status}: {view.message}")
        self.view = view


class TaskView:
    """What the node says of a task: ``id``, ``kind``, ``status``, ``result`` (bytes, when
    inline), ``message`` (why it failed), ``attempts``, ``progress`` and ``raw`` (the JSON)."""

    def __init__(self, raw):
        self.raw = raw
        self.id = raw.get("id")
        self.kind = raw.get("kind")
        self.status = raw.get("status")
        self.message = raw.get("message")
        self.attempts = raw.get("attempts")
        self.progress = raw.get("progress")
        self.progress_note = raw.get("progress_note")
        self.result_size = raw.get("result_size")
        result = raw.get("result")
        if result is not None and raw.get("result_encoding") == "base64":
            result = base64.b64decode(result)
        elif result is not None:
            result = result.encode()
        self.result = result

    @property
    def ok(self):
        return self.status == "succeeded"

    @property
    def finished(self):
        return self.status in ("succeeded", "failed", "dead", "cancelled")

    def __repr__(self):
        return f"TaskView(id={self.id!r}, kind={self.kind!r}, status={self.status!r})"


def _answer(line):
    """A view, or the refusal raised."""
    if "error" in line and line.get("error") not in ("task_failed", "task_dead"):
        raise ProtocolError(line["error"], line.get("message", ""), line)
    return TaskView(line)


class Client:
    """One connection to the fleet (the first of ``servers`` that answers). Not shared
    between threads: give each thread its own."""

    def __init__(self, servers, token=None, tls=None, timeout=330.0):
        self.conn = Connection(servers, token=token, tls=tls, timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.conn.close()

    def submit(self, kind, payload=b"", wait=True, key=None, delay=None, priority=None,
               progress=None):
        """Submit a task of ``kind``; with ``wait``, answer its outcome (a ``TaskView``),
        else at once with its id in the view. ``payload``: bytes, str, or a binary file
        object (streamed; ``progress(sent, total)`` is called as it goes). ``delay`` in
        seconds; ``priority`` 0-9; ``key``: submitting the same key again names the first
        task."""
        if isinstance(payload, str):
            payload = payload.encode()
        if hasattr(payload, "read") or len(payload) > INLINE_MAX:
            if key is not None or delay is not None or priority is not None:
                raise ValueError("a large payload goes up as a PUT body, which takes no key, delay or priority")
            return self._put(kind, payload, wait, progress)
        req = {"kind": kind, "wait": bool(wait)}
        try:
            req["payload"] = payload.decode()
        except UnicodeDecodeError:
            req["payload_base64"] = base64.b64encode(payload).decode()
        if key is not None:
            req["key"] = key
        if delay is not None:
            req["delay_ms"] = int(delay * 1000)
        if priority is not None:
            req["priority"] = int(priority)
        return _answer(self.conn.request(json.dumps(req)))

    def _put(self, kind, payload, wait, progress):
        if hasattr(payload, "read"):
            f = payload
            start = f.tell()
            f.seek(0, io.SEEK_END)
            size = f.tell() - start
            f.seek(start)
        else:
            f, size = io.BytesIO(payload), len(payload)
        self.conn.send_line(f"PUT {kind} {size}" + ("" if wait else " ASYNC"))
        self.conn.send_file(f, size, progress)
        return _answer(self.conn.read_line())

    def status(self, task_id):
        """The task's state now."""
        return _answer(self.conn.request(f"STATUS {task_id}"))

    def wait(self, task_id, timeout=300.0, every=0.1):
        """Poll until the task has ended; its view."""
        until = time.monotonic() + timeout
        while True:
            view = self.status(task_id)
            if view.finished:
                return view
            if time.monotonic() > until:
                raise TimeoutError(f"task {task_id} is still {view.status}")
            time.sleep(every)

    def result(self, task_id, out=None):
        """The result's bytes (or, with ``out``, written to that binary file object and
        its size answered). Raises ``TaskFailed`` for a task that ended without one."""
        line = self.conn.request(f"RESULT {task_id}")
        if "bytes" in line:
            n = line["bytes"]
            target = out if out is not None else io.BytesIO()
            self.conn.read_into(n, target)
            return n if out is not None else target.getvalue()
        view = _answer(line)
        if not view.ok:
            raise TaskFailed(view)
        data = view.result or b""
        if out is not None:
            out.write(data)
            return len(data)
        return data

    def cancel(self, task_id):
        """Cancel a task that has not ended: its view as the node answers it."""
        line = self.conn.request(f"CANCEL {task_id}")
        if "error" in line:
            raise ProtocolError(line["error"], line.get("message", ""), line)
        return line


__all__ = ["Client", "TaskView", "TaskFailed", "ProtocolError", "ConnectionLost"]
