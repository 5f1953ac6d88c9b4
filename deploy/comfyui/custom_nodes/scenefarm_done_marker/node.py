"""scenefarm's done-marker nodes: see __init__.py."""
import json
import os
import time

import folder_paths  # type: ignore  # ComfyUI's; the tests provide a stand-in
import nodes  # type: ignore  # ComfyUI's nodes.py, for SaveImage; the tests provide a stand-in

SAVE_IMAGE_NODE = "ScenefarmSaveImage"
VIDEO_MARKER_NODE = "ScenefarmVideoDoneMarker"

_DONE_MARKER_INPUT = ("STRING", {
    "default": "",
    "tooltip": ("Where the marker goes, relative to the output folder; "
                "empty: <filename_prefix>.done"),
})


def _inside(root, path):
    root = os.path.realpath(root)
    path = os.path.realpath(path)
    return os.path.commonpath([root, path]) == root


def marker_path(output_dir, filename_prefix, done_marker=""):
    """The marker file: done_marker (relative to the output folder) or <filename_prefix>.done;
    ValueError when it would leave the output folder."""
    rel = done_marker or (filename_prefix + ".done")
    marker = os.path.abspath(os.path.join(output_dir, rel))
    if not _inside(output_dir, os.path.dirname(marker)):
        raise ValueError("done marker outside the output folder is not allowed: " + rel)
    return marker


def write_marker_atomically(marker, body):
    """<marker>.tmp, then rename to <marker>: a reader sees the whole marker or none. No fsync:
    the marker promises that the files it lists are complete for any reader (they were closed
    before it was written, and close-to-open holds on NFS too), not that they survive a power
    loss, which their own unsynced writes do not either; two fsyncs cost ~13 ms per scene on the
    bench's disk (bench/README.md)."""
    tmp = marker + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body)
    os.rename(tmp, marker)


def write_done_marker(output_dir, filename_prefix, done_marker, paths):
    """Writes the marker listing `paths` (files already written and closed by the caller's save
    code) by their names relative to the marker's folder; files elsewhere are not listed, so the
    worker, finding them unlisted, does not trust the marker. Never waits."""
    marker = marker_path(output_dir, filename_prefix, done_marker)
    folder = os.path.dirname(marker)
    os.makedirs(folder, exist_ok=True)
    files = [os.path.basename(p) for p in paths
             if os.path.dirname(os.path.abspath(p)) == folder]
    body = json.dumps({
        "filename_prefix": filename_prefix,
        "files": files,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    write_marker_atomically(marker, body)
    return marker, files


class ScenefarmSaveImage(nodes.SaveImage):
    """ComfyUI's SaveImage (same inputs, same file names, its own save code), then the done
    marker listing exactly the files it saved. The marker is written by the node that wrote the
    files, after they are closed, so no execution order of output nodes can put it first."""

    @classmethod
    def INPUT_TYPES(cls):
        types = {k: dict(v) for k, v in super().INPUT_TYPES().items()}
        types.setdefault("optional", {})["done_marker"] = _DONE_MARKER_INPUT
        return types

    FUNCTION = "save_images_with_marker"
    CATEGORY = "scenefarm"
    DESCRIPTION = ("Saves the images as SaveImage does, then writes <filename_prefix>.done "
                   "listing them.")

    def save_images_with_marker(self, images, filename_prefix="ComfyUI", prompt=None,
                                extra_pnginfo=None, done_marker=""):
        # Refused before anything is saved: a bad marker path loses no frames.
        marker_path(self.output_dir, filename_prefix, done_marker)
        result = self.save_images(images, filename_prefix, prompt, extra_pnginfo)
        saved = [os.path.join(self.output_dir, r["subfolder"], r["filename"])
                 for r in result["ui"]["images"] if r.get("type") == "output"]
        write_done_marker(self.output_dir, filename_prefix, done_marker, saved)
        return result


class ScenefarmVideoDoneMarker:
    """The done marker for VideoHelperSuite's Video Combine: fed its VHS_FILENAMES output
    (save_output, [full paths]), so it runs after Video Combine has written every file."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "filenames": ("VHS_FILENAMES",),
                "filename_prefix": ("STRING", {"default": "ComfyUI"}),
            },
            "optional": {"done_marker": _DONE_MARKER_INPUT},
        }

    RETURN_TYPES = ()
    FUNCTION = "write"
    OUTPUT_NODE = True
    CATEGORY = "scenefarm"
    DESCRIPTION = "Writes <filename_prefix>.done listing the files Video Combine saved."

    def write(self, filenames, filename_prefix="ComfyUI", done_marker=""):
        save_output, paths = filenames
        out = os.path.abspath(folder_paths.get_output_directory())
        write_done_marker(out, filename_prefix, done_marker, list(paths) if save_output else [])
        return {}


NODE_CLASS_MAPPINGS = {
    SAVE_IMAGE_NODE: ScenefarmSaveImage,
    VIDEO_MARKER_NODE: ScenefarmVideoDoneMarker,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    SAVE_IMAGE_NODE: "Save Image (scenefarm done marker)",
    VIDEO_MARKER_NODE: "Done marker for Video Combine (scenefarm)",
}
