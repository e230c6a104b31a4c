"""Running your own code as tasks: a worker connects to the fleet, says which kinds it runs
(``WORK``), and gets one task line per free slot; each handler's outcome goes back as
``DONE`` or ``FAIL`` on the task's lease."""

import base64
import collections
import io
import json
import logging
import queue
import shutil
import signal
import tempfile
import threading
import time
import urllib.request

from ._conn import CHUNK, Connection, ConnectionLost, ProtocolError, backoff

log = logging.getLogger("tasknode.worker")

#: Results larger than this go back as a ``DONE <lease> PUT`` body (streamed).
INLINE_RESULT_MAX = 512 * 1024
#: A payload read from its URL is kept in memory up to this, then in a temporary file.
SPOOL_MAX = 1024 * 1024


class Final(Exception):
    """Raise it from a handler for a failure that running again would not fix: the task
    fails at once instead of being retried."""


class Task:
    """The task a handler runs: ``id``, ``kind``, ``attempt`` (1 for the first run),
    ``lease``, ``deadline``, ``priority``, ``key``, ``payload_size``; ``cancelled`` is set
    when the task is cancelled (or its lease ended) while it runs."""

    def __init__(self, line, session):
        self.raw = line
        self.id = line["id"]
        self.kind = line["kind"]
        self.attempt = line.get("attempt", 1)
        self.lease = line["lease"]
        self.deadline = line.get("deadline")
        self.priority = line.get("priority", 0)
        self.key = line.get("key")
        self.payload_size = line.get("payload_bytes", 0)
        self.cancelled = threading.Event()
        self._session = session

    def progress(self, percent, note=None):
        """Report progress, 0-100 (shown by STATUS and the console)."""
        line = f"PROGRESS {self.lease} {int(percent)}"
        if note:
            line += " " + " ".join(str(note).split())
        return self._session.call(line)

    def extend(self, seconds):
        """Move the lease's deadline to ``seconds`` from now (never past the kind's
        maximum); answers the new deadline."""
        answer = self._session.call(f"EXTEND {self.lease} {int(seconds)}")
        self.deadline = answer.get("deadline", self.deadline)
        return self.deadline

    def open_payload(self):
        """The payload as a binary file object (downloaded as it is read when large)."""
        raw = self.raw
        if raw.get("payload") is not None:
            return io.BytesIO(raw["payload"].encode())
        if raw.get("payload_base64") is not None:
            return io.BytesIO(base64.b64decode(raw["payload_base64"]))
        if raw.get("payload_url"):
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX)
            with urllib.request.urlopen(raw["payload_url"], timeout=60) as body:
                shutil.copyfileobj(body, spool, CHUNK)
            spool.seek(0)
            return spool
        return io.BytesIO(b"")


class _Session:
    """One worker connection: requests go out under a lock and their answers come back in
    order; a reader thread sorts the lines into answers, tasks and cancels."""

    def __init__(self, conn, on_task, on_cancel):
        self.conn = conn
        self.lock = threading.Lock()
        self.waiting = collections.deque()
        self.closed = threading.Event()
        self.on_task = on_task
        self.on_cancel = on_cancel
        conn.settimeout(None)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        try:
            while True:
                line = self.conn.read_line()
                if "task" in line:
                    self.on_task(line["task"], self)
                elif "cancel" in line:
                    self.on_cancel(line["cancel"])
                else:
                    slot = self.waiting.popleft()
                    slot[1] = line
                    slot[0].set()
        except (ConnectionLost, OSError, ValueError, IndexError) as e:
            log.info("worker connection ended: %s", e)
        finally:
            self.closed.set()
            for slot in list(self.waiting):
                slot[0].set()

    def call(self, line, body=None, size=0):
        """Send ``line`` (then ``size`` bytes from file ``body``) and wait for its answer;
        an error answer is raised as ``ProtocolError``."""
        slot = [threading.Event(), None]
        with self.lock:
            if self.closed.is_set():
                raise ConnectionLost("the worker connection ended")
            self.waiting.append(slot)
            self.conn.send_line(line)
            if body is not None:
                self.conn.send_file(body, size)
        slot[0].wait()
        answer = slot[1]
        if answer is None:
            raise ConnectionLost("the worker connection ended before an answer")
        if "error" in answer:
            raise ProtocolError(answer["error"], answer.get("message", ""), answer)
        return answer

    def close(self):
        self.conn.close()


class Worker:
    """Runs handlers for kinds of tasks: ``@worker.task("thumbnail")`` on a function
    ``(payload: bytes, task) -> bytes | str | None``; then ``worker.run(concurrency=N)``."""

    def __init__(self, servers, token=None, tls=None):
        self.servers = servers
        self.token = token
        self.tls = tls
        self.handlers = {}
        self.stopping = threading.Event()
        #: Set while the worker is connected and has said WORK.
        self.ready = threading.Event()
        self.busy = 0
        self.busy_lock = threading.Lock()
        self.running = {}

    def task(self, kind, stream=False):
        """Register the decorated function as the handler of ``kind``. With ``stream``, it
        gets the payload as a binary file object and may answer one (streamed back), so
        neither needs to fit in memory."""

        def register(fn):
            self.handlers[kind] = (fn, stream)
            return fn

        return register

    def stop(self):
        """Take no new tasks; ``run`` returns once the tasks in hand are done."""
        self.stopping.set()

    def run(self, concurrency=1, handle_signals=True):
        """Work until ``stop`` (or SIGTERM/SIGINT): ``concurrency`` tasks at once, each on a
        thread of its own. Reconnects (with backoff, across the servers) when the connection
        is lost; the tasks it held then are run again elsewhere."""
        if not self.handlers:
            raise ValueError("no handlers: decorate a function with @worker.task(kind)")
        if not 1 <= concurrency <= 256:
            raise ValueError("concurrency is from 1 to 256")
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        work = queue.Queue()
        threads = [threading.Thread(target=self._serve, args=(work,), daemon=True)
                   for _ in range(concurrency)]
        for t in threads:
            t.start()
        kinds = ",".join(sorted(self.handlers))
        failures, start = 0, 0
        while not self.stopping.is_set():
            try:
                conn = Connection(self.servers, token=self.token, tls=self.tls, start=start)
            except (ConnectionLost, ProtocolError, OSError) as e:
                failures += 1
                start += 1
                log.warning("cannot reach the fleet (%s); trying again", e)
                self.stopping.wait(backoff(failures))
                continue
            session = _Session(conn, lambda t, s: work.put((t, s)), self._cancel)
            try:
                session.call(f"WORK {kinds} slots={concurrency}")
                self.ready.set()
                failures = 0
                log.info("working on %s for %s with %d slots", conn.server, kinds, concurrency)
                while not self.stopping.is_set() and not session.closed.is_set():
                    self.stopping.wait(0.2)
                if session.closed.is_set():
                    raise ConnectionLost("the connection ended")
                # Stopping: no new tasks; finish those in hand, then leave.
                session.call("QUIET")
                # A task pushed as QUIET was read may come just after its answer.
                time.sleep(0.3)
                while not work.empty() or self.busy > 0:
                    if session.closed.is_set():
                        break
                    time.sleep(0.05)
            except (ConnectionLost, ProtocolError, OSError) as e:
                if isinstance(e, ProtocolError) and e.code in ("forbidden", "malformed"):
                    session.close()
                    raise
                failures += 1
                start += 1
                log.warning("worker connection lost (%s); reconnecting", e)
                self.stopping.wait(backoff(failures))
            finally:
                self.ready.clear()
                session.close()
        for _ in threads:
            work.put(None)

    def _cancel(self, lease):
        task = self.running.get(lease)
        if task is not None:
            task.cancelled.set()

    def _serve(self, work):
        while True:
            item = work.get()
            if item is None:
                return
            line, session = item
            with self.busy_lock:
                self.busy += 1
            try:
                self._run_one(Task(line, session), session)
            finally:
                with self.busy_lock:
                    self.busy -= 1

    def _run_one(self, task, session):
        fn, stream = self.handlers.get(task.kind, (None, False))
        self.running[task.lease] = task
        try:
            if fn is None:
                raise Final(f"this worker has no handler for `{task.kind}`")
            payload = task.open_payload()
            if not stream:
                payload = payload.read()
            result = fn(payload, task)
            if task.cancelled.is_set():
                return
            self._done(task, session, result)
        except Final as e:
            self._fail(session, task, True, e)
        except Exception as e:  # a handler's failure is its task's, not the worker's
            log.exception("task %s (%s) failed", task.id, task.kind)
            self._fail(session, task, False, e)
        finally:
            self.running.pop(task.lease, None)

    def _done(self, task, session, result):
        if result is None:
            result = b""
        if isinstance(result, str):
            result = result.encode()
        try:
            if isinstance(result, (bytes, bytearray)) and len(result) <= INLINE_RESULT_MAX:
                done = {"done": task.lease}
                try:
                    done["result"] = bytes(result).decode()
                except UnicodeDecodeError:
                    done["result_base64"] = base64.b64encode(result).decode()
                session.call(json.dumps(done))
                return
            body = io.BytesIO(result) if isinstance(result, (bytes, bytearray)) else result
            start = body.tell()
            body.seek(0, io.SEEK_END)
            size = body.tell() - start
            body.seek(start)
            session.call(f"DONE {task.lease} PUT {size}", body=body, size=size)
        except ProtocolError as e:
            log.warning("task %s: its DONE was refused (%s)", task.id, e)
        except ConnectionLost:
            log.warning("task %s: connection lost before its DONE; it runs again", task.id)

    def _fail(self, session, task, last, error):
        message = " ".join(str(error).split()) or type(error).__name__
        try:
            session.call(f"FAIL {task.lease} {'final ' if last else ''}{message}")
        except (ProtocolError, ConnectionLost) as e:
            log.warning("task %s: its FAIL was not taken (%s)", task.id, e)
