"""Done-marker benchmark (issue #13): the ComfyUI time the marker adds per scene.

Runs scenefarm's real ScenefarmSaveImage node (deploy/comfyui/custom_nodes/scenefarm_done_marker)
under ComfyUI's execution order (the tests' comfy_standin: output nodes in a given order,
dependencies first, one node at a time) with ComfyUI's SaveImage naming. Each scene's prompt is
  "1" frames -> "2" ScenefarmSaveImage (prefix run/sNNN/a1)
             -> "3" SaveImage (prefix ref/sNNN/a1), the same frames
so per scene, added = time("2") - time("3"): the marker's write, fsync, rename and directory
fsync, beside an identical save without it. Both orders: the marker's node first and last.
With a build directory, the same comparison on the ComfyUI test server, its output nodes run
in both orders (a seed per server process, found by probing): per scene, the prompt with
ScenefarmSaveImage and the prompt with plain SaveImage in its place, each timed by the server's
own execution_start / execution_success timestamps (ms), added = the difference.
Usage: python3 bench/marker_bench.py [SCENES] [FRAMES] [OUTPUT_PARENT_DIR] [BUILD_DIR]
"""
import json
import subprocess
import urllib.request
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


class TestServer:
    """scenefarm-comfyui-test-server with a fixed output-order seed, on a free port."""

    def __init__(self, binary, base, seed):
        os.makedirs(base, exist_ok=True)
        port_file = os.path.join(base, "port")
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--port-file", port_file, "--base-dir", base,
             "--output-order-seed", str(seed)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2000):
            if os.path.exists(port_file):
                break
            time.sleep(0.005)
        with open(port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())
        self.n = 0

    def run(self, workflow):
        """Submits and polls /history every 2 ms; returns the entry."""
        self.n += 1
        pid = "b%d" % self.n
        body = json.dumps({"prompt": workflow, "prompt_id": pid}).encode()
        urllib.request.urlopen(urllib.request.Request(self.url + "/prompt", body)).read()
        for _ in range(50000):
            h = json.loads(urllib.request.urlopen(self.url + "/history/" + pid).read())
            if pid in h:
                return h[pid]
            time.sleep(0.002)
        raise RuntimeError("prompt %s never finished" % pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def server_prompt(saver, seed, frames, prefix):
    return {
        "1": {"class_type": "ScenefarmTestSource",
              "inputs": {"frames": frames, "width": 16, "height": 16,
                         "render_ms_per_frame": 0, "seed": seed}},
        "2": {"class_type": saver,
              "inputs": {"images": ["1", 0], "filename_prefix": prefix + "/a"}},
        "3": {"class_type": "SaveImage",
              "inputs": {"images": ["1", 0], "filename_prefix": prefix + "/b"}},
    }


def duration_ms(entry):
    ts = {m[0]: m[1]["timestamp"] for m in entry["status"]["messages"]}
    return ts["execution_success"] - ts["execution_start"]


def bench_test_server(binary, scenes, frames, parent):
    print()
    print("ComfyUI test server (%s), %d scenes of %d frames per order:" % (binary, scenes, frames))
    print("| marker node | scenes | added p50 ms | added p99 ms | added mean ms "
          "| prompt without marker p50 ms |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=parent) as work:
        for label in ("first", "last"):
            server = None
            for seed in range(1, 200):  # the seed whose order puts "2" where wanted
                server = TestServer(binary, os.path.join(work, "%s%d" % (label, seed)), seed)
                probe = server.run(server_prompt("ScenefarmSaveImage", 0, 1, "probe"))
                order = [k for k in probe["outputs"] if k in ("2", "3")]
                if order[0 if label == "first" else 1] == "2":
                    break
                server.stop()
                server = None
            if server is None:
                raise RuntimeError("no seed puts the marker node " + label)
            added, plain = [], []
            try:
                for i in range(scenes):
                    base = duration_ms(server.run(
                        server_prompt("SaveImage", 2 * i + 1, frames, "p%04d" % i)))
                    mark = duration_ms(server.run(
                        server_prompt("ScenefarmSaveImage", 2 * i + 2, frames, "m%04d" % i)))
                    added.append(mark - base)
                    plain.append(base)
            finally:
                server.stop()
            print("| %s | %d | %d | %d | %.3f | %d |" % (
                label, scenes, percentile(added, 50), percentile(added, 99),
                sum(added) / len(added), percentile(plain, 50)))


def main():
    scenes = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    frames = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    parent = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    build = sys.argv[4] if len(sys.argv) > 4 else None
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
        print("machine: %d cores; output dir on %s; %d scenes of %d frames (%d bytes each) "
              "per order" % (os.cpu_count(), fs_type, scenes, frames, 16 * 16 * 3 + 20))
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
    if build:
        binary = os.path.join(build, "tests", "comfyui_server", "scenefarm-comfyui-test-server")
        if os.path.exists(binary):
            bench_test_server(binary, scenes, frames, parent)
        else:
            print("\n(no %s: the test server part is skipped)" % binary)


if __name__ == "__main__":
    main()
