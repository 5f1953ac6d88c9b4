"""scenefarm's done marker for ComfyUI (the producer side of the done-marker handshake).

ScenefarmDoneMarker takes the images of the workflow's save node and a filename_prefix (the one
scenefarm-worker rewrote every SaveImage to), waits until the save node's files for that prefix
exist and stop growing, then writes <output>/<prefix>.done atomically: <prefix>.done.tmp, fsync,
rename. ComfyUI does not promise to run independent output nodes in any order, so the node
checks the files itself instead of trusting that SaveImage ran first.

scenefarm-worker looks the node up in /object_info/ScenefarmDoneMarker and appends it to each
scene's workflow when it is there.
"""
from .node import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
