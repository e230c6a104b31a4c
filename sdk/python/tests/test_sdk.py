"""The Python SDK against a real fleet: two nodes of the debug build, their PostgreSQL,
RabbitMQ and S3 store (started per test by node/tests/it/python_sdk.rs)."""

import collections
import concurrent.futures
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import tasknode

HERE = os.path.dirname(os.path.abspath(__file__))


def start_worker(fleet, target, concurrency, **env):
    """A worker process: `python -m tasknode worker tests.workers:<target>`."""
    return subprocess.Popen(
        [sys.executable, "-m", "tasknode", "worker", target, "-c", str(concurrency),
         "--servers", fleet["servers"], "--token", fleet["worker_token"]],
        cwd=HERE,
        env={**os.environ, **env},
    )


def in_thread(fleet, kind, handler, concurrency=1, stream=False):
    """A worker in this process, on a thread; stop it with `.stop()`."""
    worker = tasknode.Worker(fleet["servers"], token=fleet["worker_token"])
    worker.task(kind, stream=stream)(handler)
    t = threading.Thread(target=worker.run, kwargs={"concurrency": concurrency,
                                                     "handle_signals": False}, daemon=True)
    t.start()
    assert worker.ready.wait(30), "the worker connected"
    return worker, t


def wait_for(what, within=60.0):
    until = time.monotonic() + within
    while time.monotonic() < until:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("it did not happen within %ss" % within)


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


def test_a_thousand_tasks_over_four_worker_processes_each_run_exactly_once(fleet, tmp_path):
    runs = tmp_path / "runs"
    workers = [start_worker(fleet, "workers:counting", 4, RUN_LOG=str(runs)) for _ in range(4)]
    try:
        payloads = [f"task-{i}" for i in range(1000)]

        def submit(chunk):
            with tasknode.Client(fleet["servers"], token=fleet["token"]) as c:
                return [c.submit("py-count", p) for p in chunk]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            views = [v for chunk in pool.map(submit, [payloads[i::16] for i in range(16)])
                     for v in chunk]
        assert all(v.ok for v in views), [v.raw for v in views if not v.ok][:3]
        assert sorted(v.result for v in views) == sorted(p.upper().encode() for p in payloads)
        counted = collections.Counter(runs.read_text().split())
        assert set(counted) == set(payloads)
        assert max(counted.values()) == 1, counted.most_common(3)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        # SIGTERM: the tasks in hand are finished, then the process ends cleanly.
        assert [w.wait(60) for w in workers] == [0, 0, 0, 0]


def test_a_worker_killed_mid_task_the_task_runs_again_elsewhere_once(fleet, tmp_path):
    runs, leases = tmp_path / "runs", tmp_path / "leases"
    slow = start_worker(fleet, "workers:dying", 1, RUN_LOG=str(runs), LEASE_LOG=str(leases),
                        MODE="slow")
    fast = None
    try:
        with tasknode.Client(fleet["servers"], token=fleet["token"]) as c:
            task_id = c.submit("py-kill", "work", wait=False).id
            lease = wait_for(lambda: leases.exists() and leases.read_text().strip())
            slow.kill()
            slow.wait()
            fast = start_worker(fleet, "workers:dying", 1, RUN_LOG=str(runs), MODE="fast")
            view = c.wait(task_id)
            assert view.ok, view.raw
            assert view.attempts == 2, view.raw
            assert c.result(task_id) == b"finished by fast"
        assert runs.read_text().split() == [task_id, "2"], "it finished once"
        # The killed worker's lease, answered late: refused, and nothing changes.
        conn = tasknode._conn.Connection(fleet["servers"], token=fleet["worker_token"])
        late = conn.request(f"DONE {lease} from the grave")
        conn.close()
        assert late["error"] == "lease_lost", late
        with tasknode.Client(fleet["servers"], token=fleet["token"]) as c:
            assert c.result(task_id) == b"finished by fast"
    finally:
        for w in (slow, fast):
            if w is not None and w.poll() is None:
                w.kill()


def test_a_handler_that_always_fails_makes_its_task_dead_after_its_attempts(fleet):
    calls = []

    def broken(payload, task):
        calls.append(task.attempt)
        raise RuntimeError("the printer is on fire")

    worker, t = in_thread(fleet, "py-fail", broken)
    try:
        with tasknode.Client(fleet["servers"], token=fleet["token"]) as c:
            view = c.submit("py-fail", "x")
        assert view.status == "dead", view.raw
        assert "the printer is on fire" in view.message
        assert calls == [1, 2], "py-fail gets two attempts"
        with tasknode.Client(fleet["servers"], token=fleet["token"]) as c:
            with pytest.raises(tasknode.TaskFailed):
                c.result(view.id)
    finally:
        worker.stop()
        t.join(30)


def test_a_final_failure_is_not_retried(fleet):
    def refuse(payload, task):
        raise tasknode.Final("not an image")

    worker, t = in_thread(fleet, "py-final", refuse)
    try:
        with tasknode.Client(fleet["servers"], token=fleet["token"]) as c:
            view = c.submit("py-final", b"\x00\x01")
        assert view.status == "failed" and view.attempts == 1, view.raw
        assert view.message == "not an image"
    finally:
        worker.stop()
        t.join(30)


def test_cancel_reaches_the_running_handler_and_progress_shows_in_status(fleet):
    started, seen = threading.Event(), {}

    def long(payload, task):
        task.progress(40, "halfway there")
        started.set()
        seen["cancelled"] = task.cancelled.wait(60)
        return "too late"

    worker, t = in_thread(fleet, "py-cancel", long)
    try:
        with tasknode.Client(fleet["servers"], token=fleet["token"]) as c:
            task_id = c.submit("py-cancel", "x", wait=False).id
            assert started.wait(60)
            view = c.status(task_id)
            assert (view.status, view.progress, view.progress_note) == \
                ("running", 40, "halfway there"), view.raw
            c.cancel(task_id)
            wait_for(lambda: "cancelled" in seen)
            assert seen["cancelled"] is True
            assert c.wait(task_id).status == "cancelled"
    finally:
        worker.stop()
        t.join(30)


def test_extend_keeps_a_long_task_alive_past_its_first_deadline(fleet):
    def long(payload, task):
        task.extend(20)
        time.sleep(3.5)  # py-extend's timeout is 2 s
        return "made it"

    worker, t = in_thread(fleet, "py-extend", long)
    try:
        with tasknode.Client(fleet["servers"], token=fleet["token"]) as c:
            view = c.submit("py-extend", "x")
        assert view.ok and view.result == b"made it", view.raw
    finally:
        worker.stop()
        t.join(30)


def test_a_hundred_megabyte_payload_and_result_stream_through_a_worker_of_bounded_memory(
        fleet, tmp_path):
    size = 100 * 1024 * 1024
    source = tmp_path / "payload"
    block = hashlib.sha256(b"seed").digest() * 32768  # 1 MiB
    with open(source, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
    runs = tmp_path / "runs"
    proc = start_worker(fleet, "workers:streaming", 1, RUN_LOG=str(runs))
    try:
        with tasknode.Client(fleet["servers"], token=fleet["token"]) as c:
            with open(source, "rb") as f:
                view = c.submit("py-big", f)
            assert view.ok, view.raw
            assert view.result_size == size
            out = tmp_path / "result"
            with open(out, "wb") as f:
                assert c.result(view.id, out=f) == size
        expected = hashlib.sha256()
        with open(source, "rb") as f:
            while chunk := f.read(1 << 20):
                expected.update(chunk[::-1])
        got = hashlib.sha256(out.read_bytes()).hexdigest()
        assert got == expected.hexdigest()
        assert runs.read_text().split() == [hashlib.sha256(source.read_bytes()).hexdigest()]
        # Neither the payload nor the result was held whole: the process stayed small.
        assert peak_rss_mib(proc.pid) < 60, peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_the_thumbnail_example_makes_jpeg_thumbnails_and_refuses_what_is_not_an_image(fleet):
    from PIL import Image  # installed from examples/python-thumbnails/requirements.txt

    example = os.path.join(HERE, "..", "..", "..", "examples", "python-thumbnails")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasknode", "worker", "thumbnails:worker", "-c", "2",
         "--servers", fleet["servers"], "--token", fleet["worker_token"]],
        cwd=example,
    )
    try:
        picture = Image.new("RGB", (640, 480), (200, 30, 90))
        buf = __import__("io").BytesIO()
        picture.save(buf, "PNG")
        with tasknode.Client(fleet["servers"], token=fleet["token"]) as c:
            view = c.submit("thumbnail", buf.getvalue())
            assert view.ok, view.raw
            thumb = Image.open(__import__("io").BytesIO(view.result))
            assert (thumb.format, thumb.size) == ("JPEG", (128, 96))
            bad = c.submit("thumbnail", "not a picture")
            assert bad.status == "failed" and bad.attempts == 1, bad.raw
            assert "not an image" in bad.message
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
