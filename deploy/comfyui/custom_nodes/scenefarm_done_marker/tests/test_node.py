"""Tests of the done-marker node against a minimal stand-in of ComfyUI's node interface
(folder_paths.get_output_directory, an images batch with .shape). Run:
python3 -m unittest discover -s deploy/comfyui/custom_nodes/scenefarm_done_marker/tests"""
import importlib
import json
import os
import sys
import tempfile
import threading
import time
import types
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # custom_nodes/


class Batch:
    def __init__(self, n):
        self.shape = (n, 16, 16, 3)


class DoneMarkerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = self.tmp.name
        fp = types.ModuleType("folder_paths")
        fp.get_output_directory = lambda: self.out
        sys.modules["folder_paths"] = fp
        for m in [m for m in sys.modules if m.startswith("scenefarm_done_marker")]:
            del sys.modules[m]
        self.pkg = importlib.import_module("scenefarm_done_marker")
        self.node = self.pkg.NODE_CLASS_MAPPINGS["ScenefarmDoneMarker"]()

    def tearDown(self):
        self.tmp.cleanup()

    def save(self, prefix, n, delay=0.0):
        sub, name = os.path.split(prefix)
        d = os.path.join(self.out, sub)
        os.makedirs(d, exist_ok=True)
        for i in range(1, n + 1):
            if delay:
                time.sleep(delay)
            with open(os.path.join(d, "%s_%05d_.png" % (name, i)), "wb") as f:
                f.write(b"\x89PNG frame %d" % i)

    def test_the_interface_comfyui_loads(self):
        self.assertIn("ScenefarmDoneMarker", self.pkg.NODE_CLASS_MAPPINGS)
        cls = self.pkg.NODE_CLASS_MAPPINGS["ScenefarmDoneMarker"]
        req = cls.INPUT_TYPES()["required"]
        self.assertEqual(req["images"], ("IMAGE",))
        self.assertEqual(req["filename_prefix"][0], "STRING")
        self.assertTrue(cls.OUTPUT_NODE)
        self.assertEqual(cls.RETURN_TYPES, ())
        self.assertTrue(callable(getattr(cls(), cls.FUNCTION)))

    def test_marker_is_written_after_the_frames(self):
        self.save("scenefarm/run/s1/a1", 3)
        self.node.write(Batch(3), "scenefarm/run/s1/a1")
        marker = os.path.join(self.out, "scenefarm/run/s1/a1.done")
        with open(marker) as f:
            body = json.load(f)
        self.assertEqual(body["images"], 3)
        self.assertEqual(body["files"], ["a1_00001_.png", "a1_00002_.png", "a1_00003_.png"])
        self.assertFalse(os.path.exists(marker + ".tmp"))

    def test_waits_for_frames_still_being_saved(self):
        t = threading.Thread(target=self.save, args=("run/s2/a1", 3, 0.1))
        t.start()
        self.node.write(Batch(3), "run/s2/a1")
        t.join()
        with open(os.path.join(self.out, "run/s2/a1.done")) as f:
            body = json.load(f)
        self.assertEqual(len(body["files"]), 3)

    def test_refuses_a_prefix_outside_the_output_directory(self):
        with self.assertRaises(ValueError):
            self.node.write(Batch(1), "../../etc/evil")
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.out), "evil.done")))

    def test_atomic_write_leaves_no_partial_marker(self):
        marker = os.path.join(self.out, "m.done")
        self.pkg.node.write_marker_atomically(marker, "{}")
        with open(marker) as f:
            self.assertEqual(f.read(), "{}")
        self.assertEqual(os.listdir(self.out), ["m.done"])

    def test_other_prefixes_do_not_count(self):
        self.save("r/s/a1", 2)
        self.save("r/s/a10", 2)
        self.assertEqual(self.pkg.node.frames_for_prefix(os.path.join(self.out, "r/s"), "a1"),
                         ["a1_00001_.png", "a1_00002_.png"])


if __name__ == "__main__":
    unittest.main()
