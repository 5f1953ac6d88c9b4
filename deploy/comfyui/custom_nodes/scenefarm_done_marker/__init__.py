"""scenefarm's done marker for ComfyUI (the producer side of the done-marker handshake).

The marker <prefix>.done (written as .done.tmp, then renamed) tells scenefarm-worker that the
scene's files are complete on disk and lists them. ComfyUI runs independent output nodes in an
order that changes from one ComfyUI process to the next, one at a time, so a separate marker node
can neither run after SaveImage reliably nor wait for it. The marker is therefore written by the
node that saved the files, or by a node fed the saver's output (a data dependency):

- ScenefarmSaveImage: SaveImage (its inputs, file names and save code), then the marker listing
  the files it saved. scenefarm-worker puts it in place of SaveImage when /object_info lists it.
- ScenefarmVideoDoneMarker: takes VideoHelperSuite's VHS_FILENAMES output and writes the marker
  listing those files. scenefarm-worker feeds it from each VHS_VideoCombine.

Neither waits for anything. See docs/rendering.md.
"""
from .node import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
