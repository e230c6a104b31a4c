"""tasknode: submit tasks to a tasknode fleet, and run your own code as its workers.

    import tasknode

    client = tasknode.Client("127.0.0.1:7000", token="...")
    view = client.submit("thumbnail", open("cat.jpg", "rb").read())

    worker = tasknode.Worker("127.0.0.1:7000", token="...")

    @worker.task("thumbnail")
    def thumbnail(payload, task):
        task.progress(50, "resizing")
        return make_thumbnail(payload)

    worker.run(concurrency=4)

Standard library only; Python 3.9 or later.
"""

from ._conn import ConnectionLost, ProtocolError
from .client import Client, TaskFailed, TaskView
from .worker import Final, Task, Worker

__all__ = [
    "Client",
    "ConnectionLost",
    "Final",
    "ProtocolError",
    "Task",
    "TaskFailed",
    "TaskView",
    "Worker",
]
__version__ = "0.1.0"
