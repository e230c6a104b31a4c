"""A tasknode worker that makes thumbnails: tasks of kind `thumbnail` carry an image (any
format Pillow reads); the result is a JPEG at most SIZE pixels on its longer side.

    TASKNODE_SERVERS=127.0.0.1:7000 TASKNODE_TOKEN=<worker token> \
        python -m tasknode worker thumbnails:worker -c 4
"""

import io
import os

from PIL import Image, UnidentifiedImageError

import tasknode

SIZE = int(os.environ.get("THUMBNAIL_SIZE", "128"))

worker = tasknode.Worker(os.environ.get("TASKNODE_SERVERS", "127.0.0.1:7000"),
                         token=os.environ.get("TASKNODE_TOKEN"))


@worker.task("thumbnail")
def thumbnail(payload, task):
    try:
        image = Image.open(io.BytesIO(payload))
        image.load()
    except (UnidentifiedImageError, OSError) as e:
        # Running again would not help: a final failure.
        raise tasknode.Final(f"not an image Pillow can read: {e}")
    task.progress(50, f"{image.width}x{image.height} {image.format}")
    image.thumbnail((SIZE, SIZE))
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()
