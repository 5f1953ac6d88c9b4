"""ScenefarmDoneMarker: see __init__.py."""
import json
import os
import re
import time

try:  # inside ComfyUI
    import folder_paths  # type: ignore
except ImportError:  # tests provide a stand-in module
    folder_paths = None

NODE_NAME = "ScenefarmDoneMarker"


def _output_dir():
    if folder_paths is None:
        raise RuntimeError("folder_paths unavailable: not running inside ComfyUI")
    return os.path.abspath(folder_paths.get_output_directory())


def _inside(root, path):
    root = os.path.realpath(root)
    path = os.path.realpath(path)
    return os.path.commonpath([root, path]) == root


def frames_for_prefix(directory, name):
    """SaveImage's files for prefix <subfolder>/<name>: <name>_<5 digits>_.<ext>."""
    pattern = re.compile(re.escape(name) + r"_\d{5}_\.[A-Za-z0-9]+$")
    try:
        return sorted(f for f in os.listdir(directory) if pattern.match(f))
    except FileNotFoundError:
        return []


def wait_for_frames(directory, name, expected, timeout=30.0, settle=0.25, poll=0.05):
    """Waits until `expected` files exist for the prefix and keep their sizes for `settle`
    seconds (or until timeout); returns the file names seen last."""
    deadline = time.monotonic() + timeout
    last, stable_since = None, None
    while True:
        files = frames_for_prefix(directory, name)
        sizes = tuple((f, os.path.getsize(os.path.join(directory, f))) for f in files)
        now = time.monotonic()
        if len(files) >= expected and sizes == last:
            if stable_since is not None and now - stable_since >= settle:
                return files
        else:
            stable_since = now
        last = sizes
        if now >= deadline:
            return files
        time.sleep(poll)


def write_marker_atomically(marker, body):
    """<marker>.tmp, fsync, rename to <marker>, fsync the directory: a reader sees the whole
    marker or none."""
    tmp = marker + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        data = body.encode("utf-8")
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, marker)
    dfd = os.open(os.path.dirname(marker) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class ScenefarmDoneMarker:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "filename_prefix": ("STRING", {"default": "scenefarm/run/scene/a1"}),
            }
        }

    RETURN_TYPES = ()
    FUNCTION = "write"
    OUTPUT_NODE = True
    CATEGORY = "scenefarm"
    DESCRIPTION = "Writes <filename_prefix>.done atomically once the images are saved."

    def write(self, images, filename_prefix):
        out = _output_dir()
        marker = os.path.abspath(os.path.join(out, filename_prefix + ".done"))
        if not _inside(out, marker):
            raise ValueError("done marker outside the output folder is not allowed: " + filename_prefix)
        directory, name = os.path.split(marker[: -len(".done")])
        os.makedirs(directory, exist_ok=True)
        expected = int(images.shape[0]) if hasattr(images, "shape") else len(images)
        frames = wait_for_frames(directory, name, expected)
        body = json.dumps({
            "filename_prefix": filename_prefix,
            "images": expected,
            "files": frames,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        write_marker_atomically(marker, body)
        return {}


NODE_CLASS_MAPPINGS = {NODE_NAME: ScenefarmDoneMarker}
NODE_DISPLAY_NAME_MAPPINGS = {NODE_NAME: "scenefarm done marker"}
