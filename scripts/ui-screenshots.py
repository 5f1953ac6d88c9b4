#!/usr/bin/python3
"""Screenshots of the exporter's pages (docs/ui.md) into docs/ui/, in headless Chromium over
the DevTools protocol (tests/ui/farm.py), from a running exporter: the demo's, which calls this
with SCENEFARM_DEMO_SCREENSHOTS=1 (`SCENEFARM_DEMO_SCREENSHOTS=1 make demo`) before it stops.
Not part of `make test`: it writes into docs/.

Usage: scripts/ui-screenshots.py EXPORTER_URL RUN SCENE [OUT_DIR]"""

import os
import shutil
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "ui"))
from farm import Chromium  # noqa: E402


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    base, run, scene = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    out = sys.argv[4] if len(sys.argv) > 4 else os.path.join(ROOT, "docs", "ui")
    os.makedirs(out, exist_ok=True)
    pages = [("overview", "/ui/", "#queues"),
             ("run", f"/ui/runs/{run}", "#thumbs img"),
             ("scene", f"/ui/scenes/{scene}", "#scene-state"),
             ("queue", "/ui/queues/scenes?state=done", "#scenes"),
             ("dead", "/ui/dead", "#dead")]
    work = tempfile.mkdtemp(prefix="ui-shots-")
    try:
        b = Chromium(work, width=1200, height=800)
        try:
            for name, path, selector in pages:
                b.go(base + path)
                b.wait("Number(document.body.dataset.loaded || 0) >= 1", "render of " + path)
                b.wait(f"!!document.querySelector({selector!r})", selector + " on " + path)
                # Every image in view has arrived (or failed) before the picture (lazy ones
                # further on are never fetched).
                b.wait("""[...document.images].filter((i) => { const r = i.getBoundingClientRect();
                    return r.left < innerWidth && r.top < innerHeight; }).every((i) => i.complete)""",
                       "images of " + path)
                target = os.path.join(out, name + ".png")
                b.screenshot(target)
                print(f"  {target}")
        finally:
            b.close()
    finally:
        # Chromium's helpers may still be writing into the profile as it exits.
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
