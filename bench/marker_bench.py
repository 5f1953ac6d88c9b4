"""Done-marker benchmark (issue #13): the ComfyUI time the marker adds per scene.

Runs scenefarm's real ScenefarmSaveImage node (deploy/comfyui/custom_nodes/scenefarm_done_marker)
under ComfyUI's execution order (the tests' comfy_standin: output nodes in a given order,
dependencies first, one node at a time) with ComfyUI's SaveImage naming. Each scene's prompt is
  "1" frames -> "2" ScenefarmSaveImage (prefix run/sNNN/a1)
             -> "3" SaveImage (prefix ref/sNNN/a1), the same frames
so per scene, added = time("2") - time("3"): the marker's write, fsync, rename and directory
fsync, beside an identical save without it. Both orders: the marker's node first and last.
Usage: python3 bench/marker_bench.py [SCENES] [FRAMES] [OUTPUT_PARENT_DIR]
"""
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "..", "deploy", "comfyui", "custom_nodes")
sys.path.insert(0, os.path.join(NODE_DIR, "scenefarm_done_marker", "tests"))
sys.path.insert(0, NODE_DIR)

import comfy_standin  # noqa: E402


def percentile(values, p):
    v = sorted(values)
    i = max(1, min(len(v), int(p / 100.0 * len(v) + 0.999999)))
    return v[i - 1]


def main():
    scenes = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    frames = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    parent = sys.argv[3] if len(sys.argv) > 3 else None
    with tempfile.TemporaryDirectory(dir=parent) as out:
        out = os.path.realpath(out)
        nodes = comfy_standin.install(out)
        import scenefarm_done_marker  # noqa: E402
        mappings = dict(nodes.NODE_CLASS_MAPPINGS)
        mappings.update(scenefarm_done_marker.NODE_CLASS_MAPPINGS)
        timed = {}

        def timer(cls):
            class Timed(cls):
                pass

            fn = getattr(cls, cls.FUNCTION)

            def run(self, *a, **k):
                t0 = time.perf_counter()
                try:
                    return fn(self, *a, **k)
                finally:
                    timed[cls.__name__] = time.perf_counter() - t0

            setattr(Timed, cls.FUNCTION, run)
            return Timed

        mappings["ScenefarmSaveImage"] = timer(mappings["ScenefarmSaveImage"])
        mappings["SaveImage"] = timer(mappings["SaveImage"])
        fs_type = os.popen("stat -f -c %T " + out).read().strip() or "?"
        print("machine: %d cores; output dir on %s; %d scenes of %d frames (%d bytes each) per order"
              % (os.cpu_count(), fs_type, scenes, frames, 16 * 16 * 3 + 20))
        print("| marker node | scenes | added p50 ms | added p99 ms | save without marker p50 ms "
              "| prompt p50 ms |")
        print("|---|---|---|---|---|---|")
        for label, order in (("first", ["2", "3"]), ("last", ["3", "2"])):
            added, plain, prompt_ms = [], [], []
            for i in range(scenes):
                prompt = {
                    "1": {"class_type": "ImageSource", "inputs": {"batch_size": frames}},
                    "2": {"class_type": "ScenefarmSaveImage",
                          "inputs": {"images": ["1", 0],
                                     "filename_prefix": "%s/run/s%04d/a1" % (label, i)}},
                    "3": {"class_type": "SaveImage",
                          "inputs": {"images": ["1", 0],
                                     "filename_prefix": "%s/ref/s%04d/a1" % (label, i)}},
                }
                t0 = time.perf_counter()
                executed, _ = comfy_standin.run_prompt(prompt, mappings, order)
                prompt_ms.append((time.perf_counter() - t0) * 1000)
                assert [n for n in executed if n != "1"] == order, executed
                assert os.path.exists(os.path.join(out, label, "run", "s%04d" % i, "a1.done"))
                added.append((timed["ScenefarmSaveImage"] - timed["SaveImage"]) * 1000)
                plain.append(timed["SaveImage"] * 1000)
            print("| %s | %d | %.3f | %.3f | %.3f | %.3f |" % (
                label, scenes, percentile(added, 50), percentile(added, 99),
                percentile(plain, 50), percentile(prompt_ms, 50)))


if __name__ == "__main__":
    main()
