"""The lines that explain a fit verdict: what `info --fit` prints and the detail pane shows."""

from __future__ import annotations

from gguf_tui.fit.devices import Inventory
from gguf_tui.fit.estimate import GPU_RESERVE_BYTES, Estimate
from gguf_tui.fit.verdict import Verdict
from gguf_tui.textsafe import plain
from gguf_tui.units import format_size


def breakdown(verdict: Verdict, inventory: Inventory) -> list[str]:
    """The detail lines: weights, KV at the context, overhead, total, per device, verdict."""
    result: Estimate = verdict.estimate
    head = f"fit       at context {result.n_ctx} with {result.cache_type} KV cache"
    if result.error:
        return [head, f"  cannot estimate: {plain(result.error)}"]
    shape = result.shape
    if shape and shape.trained_context and result.n_ctx > shape.trained_context:
        head += f" (beyond the trained context {shape.trained_context})"
    lines = [head]
    weights = f"  weights   {format_size(result.weight_bytes)}"
    if result.mmproj_bytes:
        weights += f" (mmproj {format_size(result.mmproj_bytes)})"
    lines.append(weights + f", {len(result.layer_weight_bytes)} layers")
    if result.kv_bytes is None:
        arch = plain(result.architecture or "?")
        lines.append(f"  KV cache  unknown (architecture {arch} not modelled)")
    else:
        what = {"mla": "MLA latent", "recurrent": "recurrent state, fixed size",
                "hybrid": "attention + recurrent state"}.get(shape.kind if shape else "", "")  # fmt: skip
        if shape and shape.window and any(layer.sliding for layer in shape.layers or ()):
            what = (what + ", " if what else "") + f"sliding window {shape.window}"
        lines.append(f"  KV cache  {format_size(result.kv_bytes)}" + (f" ({what})" if what else ""))
    lines.append(
        f"  overhead  {format_size(result.overhead_bytes)} compute buffer (approx.)"
        f" + {format_size(GPU_RESERVE_BYTES)} per GPU used"
    )
    total = result.total_bytes
    total_text = format_size(total) if total is not None else "unknown (KV unknown)"
    lines.append(f"  total     {total_text}")
    for device, nbytes in verdict.per_device.items():
        lines.append(f"  on {device:<6} {format_size(nbytes)}")
    line = f"  verdict   {verdict.label}: {plain(verdict.reason)}"
    lines.append(line)
    if verdict.max_context:
        lines.append(f"  largest context wholly on GPU: {verdict.max_context}")
    elif inventory.gpus and result.kv_known:
        lines.append("  largest context wholly on GPU: none")
    return lines
