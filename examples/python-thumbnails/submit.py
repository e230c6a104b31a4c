"""Submit every image in a directory as a `thumbnail` task and write the thumbnails next to
them (`<name>.thumb.jpg`), a few at a time.

    python submit.py photos/ --servers 127.0.0.1:7000 --token <submit token>
"""

import argparse
import concurrent.futures
import os
import pathlib
import sys

import tasknode


def main():
    p = argparse.ArgumentParser()
    p.add_argument("directory")
    p.add_argument("--servers", default=os.environ.get("TASKNODE_SERVERS", "127.0.0.1:7000"))
    p.add_argument("--token", default=os.environ.get("TASKNODE_TOKEN"))
    p.add_argument("-j", "--jobs", type=int, default=4)
    args = p.parse_args()
    images = [f for f in sorted(pathlib.Path(args.directory).iterdir())
              if f.is_file() and not f.name.endswith(".thumb.jpg")]

    def one(path):
        with tasknode.Client(args.servers, token=args.token) as c:
            view = c.submit("thumbnail", path.read_bytes())
            if not view.ok:
                return f"{path.name}: {view.status}: {view.message}"
            out = path.with_name(path.stem + ".thumb.jpg")
            out.write_bytes(view.result if view.result is not None else c.result(view.id))
            return f"{path.name}: {out.name} ({out.stat().st_size} bytes)"

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(one, images):
            failed += ": failed" in line or ": dead" in line
            print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
