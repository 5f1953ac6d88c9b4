"""A stand-in for the parts of ComfyUI the nodes use, following ComfyUI's own code:

- folder_paths.get_output_directory / get_save_image_path (ComfyUI's naming and counter);
- nodes.SaveImage: its INPUT_TYPES, save_images (file names <name>_<counter:05>_.png, the
  `ui.images` it returns), without PIL (the bytes are a PNG signature, the frame, IEND);
- VHS_VideoCombine as VideoHelperSuite returns: ui `gifs` and VHS_FILENAMES (save_output, paths);
- run_prompt: execution.py's order. validate_prompt gathers output node ids in a set and the
  executor takes list(set): the order of independent output nodes is whatever that set gives in
  that process, so run_prompt takes it as an argument and the tests try every order. Then
  comfy_execution/graph.py's ExecutionList: add_node for each output (dependencies recursively),
  and repeatedly run a ready node (all inputs done), an output node first when one is ready
  (ux_friendly_pick_node), one at a time.
"""
import os
import re
import sys
import types

PNG_SIG = b"\x89PNG\r\n\x1a\n"
IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


class Batch:
    """An IMAGE batch: len() frames of shape (h, w, 3)."""

    def __init__(self, n, w=16, h=16):
        self.frames = [bytes([i % 256]) * (w * h * 3) for i in range(n)]
        self.shape = (n, h, w, 3)

    def __len__(self):
        return len(self.frames)

    def __iter__(self):
        return iter(self.frames)


def install(output_dir):
    """Puts folder_paths and nodes stand-ins in sys.modules, writing under output_dir."""
    fp = types.ModuleType("folder_paths")

    def get_output_directory():
        return output_dir

    def get_save_image_path(filename_prefix, out_dir, image_width=0, image_height=0):
        # ComfyUI's folder_paths.get_save_image_path, less the %date% substitutions.
        def map_filename(filename):
            prefix_len = len(os.path.basename(filename_prefix))
            prefix = filename[:prefix_len + 1]
            try:
                digits = int(filename[prefix_len + 1:].split("_")[0])
            except ValueError:
                digits = 0
            return digits, prefix

        subfolder = os.path.dirname(os.path.normpath(filename_prefix))
        filename = os.path.basename(os.path.normpath(filename_prefix))
        full_output_folder = os.path.join(out_dir, subfolder)
        if os.path.commonpath((out_dir, os.path.abspath(full_output_folder))) != out_dir:
            raise Exception("**** ERROR: Saving image outside the output folder is not allowed.")
        try:
            counter = max(filter(lambda a: os.path.normcase(a[1][:-1]) == os.path.normcase(filename)
                                 and a[1][-1] == "_",
                                 map(map_filename, os.listdir(full_output_folder))))[0] + 1
        except ValueError:
            counter = 1
        except FileNotFoundError:
            os.makedirs(full_output_folder, exist_ok=True)
            counter = 1
        return full_output_folder, filename, counter, subfolder, filename_prefix

    fp.get_output_directory = get_output_directory
    fp.get_save_image_path = get_save_image_path
    sys.modules["folder_paths"] = fp

    nd = types.ModuleType("nodes")

    class SaveImage:
        def __init__(self):
            self.output_dir = fp.get_output_directory()
            self.type = "output"
            self.prefix_append = ""
            self.compress_level = 4

        @classmethod
        def INPUT_TYPES(s):
            return {"required": {"images": ("IMAGE", {"tooltip": "The images to save."}),
                                 "filename_prefix": ("STRING", {"default": "ComfyUI"})},
                    "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

        RETURN_TYPES = ()
        FUNCTION = "save_images"
        OUTPUT_NODE = True
        CATEGORY = "image"

        def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
            filename_prefix += self.prefix_append
            full_output_folder, filename, counter, subfolder, filename_prefix = \
                fp.get_save_image_path(filename_prefix, self.output_dir, 16, 16)
            results = list()
            for (batch_number, image) in enumerate(images):
                filename_with_batch_num = filename.replace("%batch_num%", str(batch_number))
                file = f"{filename_with_batch_num}_{counter:05}_.png"
                with open(os.path.join(full_output_folder, file), "wb") as f:
                    f.write(PNG_SIG + image + IEND)
                results.append({"filename": file, "subfolder": subfolder, "type": self.type})
                counter += 1
            return {"ui": {"images": results}}

    class ImageSource:
        @classmethod
        def INPUT_TYPES(s):
            return {"required": {"batch_size": ("INT", {"default": 2})}}

        RETURN_TYPES = ("IMAGE",)
        FUNCTION = "make"

        def make(self, batch_size):
            return (Batch(batch_size),)

    class VHS_VideoCombine:
        @classmethod
        def INPUT_TYPES(s):
            return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {})}}

        RETURN_TYPES = ("VHS_FILENAMES",)
        OUTPUT_NODE = True
        FUNCTION = "combine_video"

        def combine_video(self, images, filename_prefix="AnimateDiff", save_output=True):
            full_output_folder, filename, _, subfolder, _ = fp.get_save_image_path(
                filename_prefix, fp.get_output_directory())
            max_counter = 0
            matcher = re.compile(f"{re.escape(filename)}_(\\d+)\\D*\\..+", re.IGNORECASE)
            for existing_file in os.listdir(full_output_folder):
                match = matcher.fullmatch(existing_file)
                if match:
                    max_counter = max(max_counter, int(match.group(1)))
            counter = max_counter + 1
            first_image_file = f"{filename}_{counter:05}.png"
            output_files = [os.path.join(full_output_folder, first_image_file)]
            with open(output_files[0], "wb") as f:
                f.write(PNG_SIG + images.frames[0] + IEND)
            file = f"{filename}_{counter:05}.mp4"
            output_files.append(os.path.join(full_output_folder, file))
            with open(output_files[-1], "wb") as f:
                f.write(b"\x00\x00\x00\x14ftypisom" + b"".join(images.frames))
            preview = {"filename": file, "subfolder": subfolder,
                       "type": "output" if save_output else "temp", "format": "video/h264-mp4",
                       "frame_rate": 8, "workflow": first_image_file,
                       "fullpath": output_files[-1]}
            return {"ui": {"gifs": [preview]}, "result": ((save_output, output_files),)}

    nd.SaveImage = SaveImage
    nd.NODE_CLASS_MAPPINGS = {"SaveImage": SaveImage, "ImageSource": ImageSource,
                              "VHS_VideoCombine": VHS_VideoCombine}
    sys.modules["nodes"] = nd
    return nd


def is_link(v):
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)


def output_ids(prompt, mappings):
    """validate_prompt: the output nodes, gathered in a set."""
    outputs = set()
    for x in prompt:
        if getattr(mappings[prompt[x]["class_type"]], "OUTPUT_NODE", False) is True:
            outputs.add(x)
    return outputs


def run_prompt(prompt, mappings, execute_outputs, on_node_done=None):
    """Runs `prompt` as ComfyUI's executor does, taking the output nodes in the order of
    `execute_outputs` (one order list(set) can give). Returns (node ids in execution order,
    ui outputs by node id). on_node_done(node_id) is called after each node."""
    pending, block_count, blocking = {}, {}, {}

    def add_node(node_id):
        if node_id in pending:
            return
        pending[node_id] = True
        block_count.setdefault(node_id, 0)
        blocking.setdefault(node_id, {})
        for value in prompt[node_id]["inputs"].values():
            if is_link(value):
                frm = value[0]
                add_node(frm)
                if node_id not in blocking[frm]:
                    blocking[frm][node_id] = True
                    block_count[node_id] += 1

    for node_id in list(execute_outputs):
        add_node(node_id)

    def is_output(node_id):
        return getattr(mappings[prompt[node_id]["class_type"]], "OUTPUT_NODE", False) is True

    def pick(ready):
        for n in ready:
            if is_output(n):
                return n
        for n in ready:
            if any(is_output(b) for b in blocking[n]):
                return n
        return ready[0]

    results, ui, order = {}, {}, []
    while pending:
        ready = [n for n in pending if block_count[n] == 0]
        node_id = pick(ready)
        node = prompt[node_id]
        cls = mappings[node["class_type"]]
        kwargs = {}
        for name, value in node["inputs"].items():
            kwargs[name] = results[value[0]][value[1]] if is_link(value) else value
        out = getattr(cls(), cls.FUNCTION)(**kwargs)
        if isinstance(out, dict):
            if "ui" in out:
                ui[node_id] = out["ui"]
            out = out.get("result", ())
        results[node_id] = out
        order.append(node_id)
        del pending[node_id]
        for b in blocking[node_id]:
            block_count[b] -= 1
        if on_node_done:
            on_node_done(node_id)
    return order, ui
