"""Will it fit: this box's GPUs and RAM, a model's memory at a context length, the verdict.

`devices` probes the hardware, `shape` and `estimate` follow llama.cpp's memory model,
`verdict` places an estimate on the devices (`short_label` is the catalog's fit cell), and
`remote` reads Hub headers once per (repo, revision, path) for the catalog and `files --fit`.
"""

from gguf_tui.fit.devices import Device, Inventory, detect
from gguf_tui.fit.estimate import Estimate, ModelFiles, at_context, estimate
from gguf_tui.fit.verdict import Verdict, judge, short_label

__all__ = [
    "Device",
    "Estimate",
    "Inventory",
    "ModelFiles",
    "Verdict",
    "at_context",
    "detect",
    "estimate",
    "judge",
    "short_label",
]
