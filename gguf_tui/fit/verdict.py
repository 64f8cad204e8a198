"""Will it fit: an estimate placed on the devices, the way llama.cpp would place it.

llama.cpp offloads whole repeating layers (weights plus that layer's KV cache) to the GPUs and
keeps the rest in RAM; the output layer and the mmproj go to a GPU only when every layer does.
Each GPU that runs layers also needs its compute buffer and a runtime reserve (`fit.estimate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gguf_tui.fit.devices import Device, Inventory
from gguf_tui.fit.estimate import GPU_RESERVE_BYTES, Estimate, at_context
from gguf_tui.fit.shape import CTX_PAD

GPU = "gpu"
PARTIAL = "partial"
RAM = "ram"
NO_FIT = "no"
UNKNOWN = "unknown"

# The catalog's cell: a symbol and a word, readable without colour (NO_COLOR).
LABELS = {
    GPU: ("✓", "GPU"),
    PARTIAL: ("◐", "partial"),
    RAM: ("○", "RAM"),
    NO_FIT: ("✗", "no fit"),
    UNKNOWN: ("?", "unknown"),
}
MAX_SEARCH_CONTEXT = 1 << 20  # the largest context searched when the trained one is unknown


@dataclass
class Verdict:
    """Where a model goes at one context: `status` is one of GPU, PARTIAL, RAM, NO_FIT, UNKNOWN."""

    status: str
    estimate: Estimate
    gpu_layers: int = 0
    n_layers: int = 0
    gpus_used: list[int] = field(default_factory=list)
    per_device: dict[str, int] = field(default_factory=dict)  # label -> bytes placed there
    max_context: int | None = None  # largest context that fits wholly on the GPUs
    reason: str = ""

    @property
    def label(self) -> str:
        """Short form for a table cell, e.g. '✓ GPU', '◐ 20/32', '? KV unknown'."""
        return short_label(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "label": self.label,
            "gpu_layers": self.gpu_layers,
            "layers": self.n_layers,
            "gpus_used": self.gpus_used,
            "per_device": self.per_device,
            "max_context": self.max_context,
            "reason": self.reason,
            "kv_known": self.estimate.kv_known,
            "estimate": self.estimate.to_json(),
        }


def short_label(verdict: Verdict) -> str:
    """A quant row's fit cell: symbol plus word (the function the catalog column calls)."""
    if verdict.estimate.error:
        return "? n/a"
    symbol, word = LABELS[verdict.status]
    if verdict.status == PARTIAL:
        word = f"{verdict.gpu_layers}/{verdict.n_layers}"
    if not verdict.estimate.kv_known:
        return f"? {word}, KV?"
    return f"{symbol} {word}"


def judge(estimate: Estimate, inventory: Inventory, *, search_context: bool = True) -> Verdict:
    """Place `estimate` on the devices; with `search_context`, also the largest context that
    still fits wholly on the GPUs."""
    if estimate.error:
        return Verdict(UNKNOWN, estimate, reason=f"cannot estimate: {estimate.error}")
    verdict = _place(estimate, inventory.gpus, inventory.ram)
    if not estimate.kv_known:
        verdict.reason += f" (weights and overhead only: KV cache unknown for {estimate.architecture})"
    if search_context and estimate.kv_known and inventory.gpus:
        verdict.max_context = largest_gpu_context(estimate, inventory.gpus)
    return verdict


def largest_gpu_context(estimate: Estimate, gpus: list[Device]) -> int | None:
    """The largest context (a multiple of 256) at which the whole model fits on the GPUs."""
    shape = estimate.shape
    if shape is None or not estimate.kv_known:
        return None
    top = shape.trained_context or MAX_SEARCH_CONTEXT
    low, high = 0, top // CTX_PAD  # in units of CTX_PAD; low always fits (0: none known yet)
    while low < high:
        mid = (low + high + 1) // 2
        if _place(at_context(estimate, mid * CTX_PAD), gpus, None).status == GPU:
            low = mid
        else:
            high = mid - 1
    return low * CTX_PAD or None


def _place(estimate: Estimate, gpus: list[Device], ram: Device | None) -> Verdict:
    kv = estimate.kv_layer_bytes or [0] * len(estimate.layer_weight_bytes)
    n_layers = len(estimate.layer_weight_bytes)
    layer_sizes = [w + k for w, k in zip(estimate.layer_weight_bytes, kv)]
    whole = estimate.other_weight_bytes + estimate.mmproj_bytes  # all of it when in RAM
    gpu_whole = estimate.gpu_whole_bytes  # what goes to a GPU when every layer does
    room = [max(0, gpu.free_bytes - GPU_RESERVE_BYTES - estimate.compute_bytes) for gpu in gpus]
    placed = [0] * len(gpus)
    # The last layers go first (llama.cpp's -ngl N offloads the last N), filling GPUs in order.
    layers_on_gpu = 0
    gpu = 0
    for size in reversed(layer_sizes):
        while gpu < len(gpus) and room[gpu] - placed[gpu] < size:
            gpu += 1
        if gpu == len(gpus):
            break
        placed[gpu] += size
        layers_on_gpu += 1
    verdict = Verdict(NO_FIT, estimate, gpu_layers=layers_on_gpu, n_layers=n_layers)
    if gpus and layers_on_gpu == n_layers:
        spare = [room[i] - placed[i] for i in range(len(gpus))]
        best = max(range(len(gpus)), key=lambda i: spare[i])
        if spare[best] >= gpu_whole:
            placed[best] += gpu_whole
            used = [i for i in range(len(gpus)) if placed[i]]
            verdict.status = GPU
            verdict.gpus_used = [gpus[i].index if gpus[i].index is not None else i for i in used]
            verdict.per_device = {
                gpus[i].label: placed[i] + GPU_RESERVE_BYTES + estimate.compute_bytes for i in used
            }
            verdict.reason = f"fits on {', '.join(gpus[i].label for i in used)}"
            verdict.per_device["RAM"] = estimate.cpu_whole_bytes
            return verdict
        layers_on_gpu = verdict.gpu_layers = n_layers  # all layers, output stays in RAM
    in_ram = sum(layer_sizes[: n_layers - layers_on_gpu]) + whole + estimate.compute_bytes
    ram_free = ram.free_bytes if ram is not None else None
    used = [i for i in range(len(gpus)) if placed[i]]
    verdict.per_device = {
        gpus[i].label: placed[i] + GPU_RESERVE_BYTES + estimate.compute_bytes for i in used
    }
    verdict.per_device["RAM"] = in_ram
    verdict.gpus_used = [gpus[i].index if gpus[i].index is not None else i for i in used]
    if ram_free is not None and in_ram > ram_free:
        verdict.status = NO_FIT
        verdict.reason = "does not fit in GPU memory and RAM together"
    elif layers_on_gpu:
        verdict.status = PARTIAL
        verdict.reason = f"partial offload: {layers_on_gpu} of {n_layers} layers on GPU"
    else:
        verdict.status = RAM
        verdict.reason = "runs from RAM only (CPU)" if gpus else "no GPU: runs from RAM (CPU)"
    if ram_free is None and verdict.status != NO_FIT:
        verdict.reason += " (RAM size unknown)"
    return verdict
