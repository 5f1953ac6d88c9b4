#!/usr/bin/env python3
"""Thumbnail strip benchmark (issue #17, docs/ui.md): a run page with 24 frames in headless
Chromium, the frames served as they are (scaled by the browser, loading="lazy", ETag) against
what a resize-once-and-cache server would send (the same frames made at strip size: 96 px high).
Prints, per frame size and way, the bytes the images took over the wire and the time from the
navigation to the last image loaded, cold (no browser cache) and warm (revalidation: 304s).
The resize itself (the cost of way a, paid once per frame) is not in these figures.

Usage: bench/ui_thumbs_bench.py BUILD_DIR [REPEATS]"""

import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ui"))

FRAMES = 24
STRIP_HEIGHT = 96  # .thumbs img { height: 96px } in exporter/ui/app.css


ENTRIES = """performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/files/') && e.name.endsWith('.png'))
    .map((e) => [e.transferSize, e.responseEnd])"""


def measure(b, url, cold):
    """(images, bytes, ms) for the first screen, then (bytes, ms) for the whole strip."""
    b.send("Network.setCacheDisabled", cacheDisabled=cold)
    b.go(url)
    # First screen: every thumbnail inside the viewport is loaded (lazy loading may fetch a few
    # beyond it; they are counted).
    b.wait("""(() => { const i = [...document.querySelectorAll('#thumbs img')];
        return i.length > 0 && i.filter((x) => x.getBoundingClientRect().left < innerWidth)
          .every((x) => x.complete && x.naturalWidth > 0); })()""", "first screen", timeout=120)
    first = b.js(ENTRIES)
    # The whole strip, as if scrolled through.
    b.js("document.querySelectorAll('#thumbs img').forEach((x) => { x.loading = 'eager'; })")
    b.wait(f"""(() => {{ const i = [...document.querySelectorAll('#thumbs img')];
        return i.length === {FRAMES} && i.every((x) => x.complete && x.naturalWidth > 0); }})()""",
           "every thumbnail loaded", timeout=120)
    every = b.js(ENTRIES)
    return (len(first), sum(e[0] for e in first), max(e[1] for e in first),
            sum(e[0] for e in every), max(e[1] for e in every))


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    os.environ.setdefault("SCENEFARM_EXPORTER_BIN", os.path.join(build, "exporter", "scenefarm-exporter"))
    os.environ.setdefault("SCENEFARM_UI_FIXTURE_BIN", os.path.join(build, "tests", "ui", "scenefarm-ui-fixture"))
    from farm import Chromium, Farm

    cases = []
    for w, h in [(64, 64), (1280, 720)]:
        tw = max(1, round(w * STRIP_HEIGHT / h))
        cases.append((f"{w}x{h}", "b: original, browser-scaled, lazy", (w, h)))
        if h > STRIP_HEIGHT:
            cases.append((f"{w}x{h}", f"a: resized once to {tw}x{STRIP_HEIGHT} (served)", (tw, STRIP_HEIGHT)))
        else:
            cases.append((f"{w}x{h}", "a: nothing to resize (frames below strip height)", (w, h)))
    print(f"{FRAMES} frames per run page, noisy PNGs, {repeats} repeats, median")
    print("first screen: the thumbnails fetched until every one in the viewport (1280 px) showed;")
    print("strip: all 24 (as if scrolled through); ms from navigation start; warm: cache kept (304s)")
    print(f"{'frames':>10}  {'way':<50} {'first: imgs':>11} {'KiB':>8} {'ms':>6}  "
          f"{'strip: KiB':>10} {'ms':>6}  {'warm KiB':>8} {'ms':>6}")
    for frames_label, way, size in cases:
        farm = Farm(run="bench", frames=FRAMES, size=size, noise=True)
        try:
            b = Chromium(farm.dir, width=1280, height=900)
            try:
                url = farm.base + "/ui/runs/bench"
                cold, warm = [], []
                for _ in range(repeats):
                    cold.append(measure(b, url, cold=True))
                    warm.append(measure(b, url, cold=False))
                med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
                print(f"{frames_label:>10}  {way:<50} {med(cold, 0):11.0f} {med(cold, 1) / 1024:8.1f} "
                      f"{med(cold, 2):6.0f}  {med(cold, 3) / 1024:10.1f} {med(cold, 4):6.0f}  "
                      f"{med(warm, 3) / 1024:8.1f} {med(warm, 4):6.0f}", flush=True)
            finally:
                b.close()
        finally:
            farm.close()


if __name__ == "__main__":
    main()
