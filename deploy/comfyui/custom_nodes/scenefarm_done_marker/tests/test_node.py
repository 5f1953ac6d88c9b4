"""Tests of scenefarm's done-marker nodes against ComfyUI's execution-order semantics
(comfy_standin.run_prompt: output nodes in whatever order ComfyUI's set gives, dependencies
first, one node at a time) in every order, with ComfyUI's SaveImage naming. Run:
python3 -m unittest discover -s deploy/comfyui/custom_nodes/scenefarm_done_marker/tests"""
import importlib
import itertools
import json
import os
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # custom_nodes/

import comfy_standin  # noqa: E402


class NodesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.realpath(self.tmp.name)
        self.comfy_nodes = comfy_standin.install(self.out)
        for m in [m for m in sys.modules if m.startswith("scenefarm_done_marker")]:
            del sys.modules[m]
        self.pkg = importlib.import_module("scenefarm_done_marker")
        self.mappings = dict(self.comfy_nodes.NODE_CLASS_MAPPINGS)
        self.mappings.update(self.pkg.NODE_CLASS_MAPPINGS)
        # No node may wait: a marker that waits for another node's files blocks that node.
        self._sleep = time.sleep
        time.sleep = self._no_sleep

    def tearDown(self):
        time.sleep = self._sleep
        self.tmp.cleanup()

    @staticmethod
    def _no_sleep(_):
        raise AssertionError("a node waited (time.sleep)")

    def run_every_order(self, prompt, check):
        """Runs `prompt` once per order of its output nodes (each in a fresh output folder's
        subfolder named by the order), snapshotting the files after every node; check(order,
        snapshots, ui, sub) asserts on each run."""
        outputs = comfy_standin.output_ids(prompt, self.mappings)
        self.assertGreaterEqual(len(outputs), 2, "the point is the order of several outputs")
        runs = 0
        for order in itertools.permutations(sorted(outputs)):
            sub = "o" + "".join(order)
            p = json.loads(json.dumps(prompt).replace("{SUB}", sub))
            snapshots = []

            def snap(node_id):
                state = {}
                for root, _, files in os.walk(os.path.join(self.out, sub)):
                    for f in files:
                        path = os.path.join(root, f)
                        state[os.path.relpath(path, self.out)] = os.path.getsize(path)
                snapshots.append((node_id, state))

            executed, ui = comfy_standin.run_prompt(p, self.mappings, order, snap)
            check(executed, snapshots, ui, sub)
            runs += 1
        return runs

    def assert_marker_after_files(self, snapshots, marker_rel, listed_dir):
        """The first snapshot with the marker already holds every file it lists, at its final
        size; the marker lists what the last snapshot holds under that name."""
        final = snapshots[-1][1]
        first = next(s for _, s in snapshots if marker_rel in s)
        with open(os.path.join(self.out, marker_rel)) as f:
            body = json.load(f)
        self.assertTrue(body["files"])
        for name in body["files"]:
            rel = os.path.join(listed_dir, name)
            self.assertIn(rel, first, "marker written before " + rel)
            self.assertEqual(first[rel], final[rel], rel + " still growing after the marker")
        return body

    def test_the_interface_comfyui_loads(self):
        self.assertEqual(set(self.pkg.NODE_CLASS_MAPPINGS),
                         {"ScenefarmSaveImage", "ScenefarmVideoDoneMarker"})
        save = self.pkg.NODE_CLASS_MAPPINGS["ScenefarmSaveImage"]
        self.assertTrue(issubclass(save, self.comfy_nodes.SaveImage))
        types = save.INPUT_TYPES()
        self.assertEqual(types["required"], self.comfy_nodes.SaveImage.INPUT_TYPES()["required"])
        self.assertEqual(types["hidden"], {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"})
        self.assertEqual(types["optional"]["done_marker"][0], "STRING")
        self.assertNotIn("optional", self.comfy_nodes.SaveImage.INPUT_TYPES())  # not mutated
        self.assertTrue(save.OUTPUT_NODE)
        self.assertEqual(save.RETURN_TYPES, ())
        self.assertTrue(callable(getattr(save(), save.FUNCTION)))
        video = self.pkg.NODE_CLASS_MAPPINGS["ScenefarmVideoDoneMarker"]
        self.assertEqual(video.INPUT_TYPES()["required"]["filenames"], ("VHS_FILENAMES",))
        self.assertTrue(video.OUTPUT_NODE)

    def test_save_image_marker_follows_its_frames_in_every_output_order(self):
        # The workflow (images -> the saver) beside another output node of the same
        # images: ComfyUI may run either first.
        prompt = {
            "1": {"class_type": "ImageSource", "inputs": {"batch_size": 2}},
            "2": {"class_type": "ScenefarmSaveImage",
                  "inputs": {"images": ["1", 0], "filename_prefix": "{SUB}/run/s1/a1"}},
            "3": {"class_type": "SaveImage",
                  "inputs": {"images": ["1", 0], "filename_prefix": "{SUB}/other/x"}},
        }

        def check(executed, snapshots, ui, sub):
            self.assertEqual(executed[0], "1")
            body = self.assert_marker_after_files(snapshots, sub + "/run/s1/a1.done",
                                                  sub + "/run/s1")
            # Exactly the files the node saved and reported, as SaveImage names them.
            self.assertEqual(body["files"], ["a1_00001_.png", "a1_00002_.png"])
            self.assertEqual([i["filename"] for i in ui["2"]["images"]], body["files"])
            self.assertEqual(body["filename_prefix"], sub + "/run/s1/a1")
            self.assertFalse(os.path.exists(os.path.join(self.out, sub, "run/s1/a1.done.tmp")))

        self.assertEqual(self.run_every_order(prompt, check), 2)

    def test_video_marker_follows_video_combine_in_every_output_order(self):
        prompt = {
            "1": {"class_type": "ImageSource", "inputs": {"batch_size": 3}},
            "2": {"class_type": "VHS_VideoCombine",
                  "inputs": {"images": ["1", 0], "filename_prefix": "{SUB}/run/s1/a1"}},
            "3": {"class_type": "ScenefarmVideoDoneMarker",
                  "inputs": {"filenames": ["2", 0], "filename_prefix": "{SUB}/run/s1/a1",
                             "done_marker": "{SUB}/run/s1/a1.n3.done"}},
            "4": {"class_type": "SaveImage",
                  "inputs": {"images": ["1", 0], "filename_prefix": "{SUB}/other/x"}},
        }

        def check(executed, snapshots, ui, sub):
            self.assertLess(executed.index("2"), executed.index("3"))
            body = self.assert_marker_after_files(snapshots, sub + "/run/s1/a1.n3.done",
                                                  sub + "/run/s1")
            self.assertEqual(body["files"], ["a1_00001.png", "a1_00001.mp4"])
            self.assertIn(ui["2"]["gifs"][0]["filename"], body["files"])

        self.assertEqual(self.run_every_order(prompt, check), 6)

    def test_a_separate_marker_node_runs_before_the_saver_in_one_order(self):
        # Why the old ScenefarmDoneMarker (fed the images, not the saver) could not work: in
        # one of the two orders ComfyUI runs it before SaveImage has written anything.
        out = self.out
        seen = {}

        class SeparateMarker:
            OUTPUT_NODE = True
            FUNCTION = "write"
            RETURN_TYPES = ()

            def write(self, images, filename_prefix):
                first_frame = os.path.join(out, filename_prefix + "_00001_.png")
                seen[filename_prefix] = os.path.exists(first_frame)
                return {}

        self.mappings["SeparateMarker"] = SeparateMarker
        prompt = {
            "1": {"class_type": "ImageSource", "inputs": {"batch_size": 1}},
            "2": {"class_type": "SaveImage",
                  "inputs": {"images": ["1", 0], "filename_prefix": "{SUB}/a1"}},
            "3": {"class_type": "SeparateMarker",
                  "inputs": {"images": ["1", 0], "filename_prefix": "{SUB}/a1"}},
        }
        self.run_every_order(prompt, lambda *a: None)
        self.assertEqual(seen, {"o23/a1": True, "o32/a1": False})

    def test_a_video_kept_in_temp_lists_no_files(self):
        node = self.pkg.NODE_CLASS_MAPPINGS["ScenefarmVideoDoneMarker"]()
        node.write((False, [os.path.join(self.out, "t", "a_00001.mp4")]), "t/a")
        with open(os.path.join(self.out, "t", "a.done")) as f:
            self.assertEqual(json.load(f)["files"], [])

    def test_refuses_a_marker_outside_the_output_directory_before_saving(self):
        node = self.pkg.NODE_CLASS_MAPPINGS["ScenefarmSaveImage"]()
        with self.assertRaises(ValueError):
            node.save_images_with_marker(comfy_standin.Batch(1), "ok/a1",
                                         done_marker="../../etc/evil.done")
        self.assertFalse(os.path.exists(os.path.join(self.out, "ok")))
        with self.assertRaises(ValueError):
            node.save_images_with_marker(comfy_standin.Batch(1), "../../etc/evil")

    def test_files_outside_the_markers_folder_are_not_listed(self):
        marker, files = self.pkg.node.write_done_marker(
            self.out, "a/b", "", [os.path.join(self.out, "a", "b_00001_.png"),
                                  os.path.join(self.out, "elsewhere", "c.png")])
        self.assertEqual(marker, os.path.join(self.out, "a", "b.done"))
        self.assertEqual(files, ["b_00001_.png"])

    def test_atomic_write_leaves_no_partial_marker(self):
        marker = os.path.join(self.out, "m.done")
        self.pkg.node.write_marker_atomically(marker, "{}")
        with open(marker) as f:
            self.assertEqual(f.read(), "{}")
        self.assertEqual(os.listdir(self.out), ["m.done"])


if __name__ == "__main__":
    unittest.main()
