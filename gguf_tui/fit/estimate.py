"""How much memory a model needs at a context length: weights, KV cache, overhead.

Weights are exact: the sum of the tensor data sizes in the tensor tables (every split part, and
the mmproj when there is one). The KV cache follows llama.cpp's memory model (`fit.shape`).

Overhead is an approximation, shown as its own line:

- compute buffer per device: `n_ubatch × (4 × n_vocab + 2 × cells + 4 × widest)` bytes,
  n_ubatch = 512 (llama.cpp's default micro-batch), widest = 4 × n_embd + 2 × n_ff +
  4 × ssm_d_inner. The terms are the F32 logits of one micro-batch, the F16 attention masks
  (cells × n_ubatch for the cache and, with sliding windows, for the window cache; flash
  attention is llama.cpp's default), and the widest activations (feed-forward gate and up, a
  few of width n_embd, the SSM's inner projections). The graph allocator reuses memory, so
  the real buffer is at most about this: Llama-3-8B at 8k gives 346 MiB here where llama.cpp
  reports ~258 MiB (logits 250 + mask 8); on the small models of `bench/bench_fit.py`, the
  totals land within 1 % of llama.cpp's own buffers;
- runtime reserve per GPU: 256 MiB, for the CUDA/ROCm context and BLAS workspaces that are
  taken from the card but never listed as llama.cpp buffers (measured 200-500 MiB, driver
  dependent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gguf_tui.fit.shape import N_UBATCH, CannotEstimate, ModelShape, cache_type, model_shape, pad
from gguf_tui.gguf.info import GGUFInfo

GPU_RESERVE_BYTES = 256 * 1024 * 1024
MAX_WEIGHT_BYTES = 1 << 50  # 1 PiB: a tensor table claiming more is not a real model
DEFAULT_CONTEXT = 8192


@dataclass(frozen=True)
class ModelFiles:
    """The headers of one model: its parts (in order), and the mmproj if any."""

    parts: tuple[GGUFInfo, ...]
    mmproj: GGUFInfo | None = None
    file_bytes: int | None = None  # the files' total size when known (bounds the weights)


@dataclass
class Estimate:
    """Memory a model needs at `n_ctx`; `error` set means "cannot estimate" (nothing else is)."""

    n_ctx: int
    cache_type: str
    architecture: str | None = None
    error: str | None = None
    shape: ModelShape | None = None
    layer_weight_bytes: list[int] = field(default_factory=list)  # per block, in order
    other_weight_bytes: int = 0  # embeddings, output, norms: placed whole
    input_weight_bytes: int = 0  # token embeddings (in other_weight_bytes): stay on the CPU
    output_tied: bool = False  # no output matrix: llama.cpp copies the embeddings to the GPU
    mmproj_bytes: int = 0
    kv_layer_bytes: list[int] | None = None  # None: KV unknown
    compute_bytes: int = 0  # per device that runs layers

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def kv_known(self) -> bool:
        return self.kv_layer_bytes is not None

    @property
    def weight_bytes(self) -> int:
        return sum(self.layer_weight_bytes) + self.other_weight_bytes + self.mmproj_bytes

    @property
    def kv_bytes(self) -> int | None:
        return None if self.kv_layer_bytes is None else sum(self.kv_layer_bytes)

    @property
    def gpu_whole_bytes(self) -> int:
        """What goes to a GPU besides the layers when all of them do: output, norms, mmproj.

        The token embeddings stay in RAM (llama.cpp's input layer is on the CPU), unless the
        output is tied to them, when llama.cpp puts a copy on the GPU as the output matrix."""
        kept_on_cpu = 0 if self.output_tied else self.input_weight_bytes
        return self.other_weight_bytes - kept_on_cpu + self.mmproj_bytes

    @property
    def cpu_whole_bytes(self) -> int:
        """What stays in RAM when every layer is on a GPU: the token embeddings."""
        return self.input_weight_bytes

    @property
    def overhead_bytes(self) -> int:
        """Overhead when the whole model runs on one device (per-GPU figures in the verdict)."""
        return self.compute_bytes

    @property
    def total_bytes(self) -> int | None:
        kv = self.kv_bytes
        return None if kv is None else self.weight_bytes + kv + self.overhead_bytes

    def to_json(self) -> dict[str, Any]:
        if self.error:
            return {"n_ctx": self.n_ctx, "cache_type": self.cache_type, "error": self.error}
        shape = self.shape
        return {
            "n_ctx": self.n_ctx,
            "cache_type": self.cache_type,
            "architecture": self.architecture,
            "kind": shape.kind if shape else None,
            "layers": len(self.layer_weight_bytes),
            "trained_context": shape.trained_context if shape else None,
            "sliding_window": shape.window if shape else None,
            "weights_bytes": self.weight_bytes,
            "mmproj_bytes": self.mmproj_bytes,
            "kv_bytes": self.kv_bytes,
            "kv_known": self.kv_known,
            "overhead_bytes": self.overhead_bytes,
            "total_bytes": self.total_bytes,
        }


def estimate(model: ModelFiles, n_ctx: int | None = None, cache: str = "f16") -> Estimate:
    """The estimate for `model` at `n_ctx` (default: 8192, or the trained context if smaller)."""
    kind = cache_type(cache)
    main = model.parts[0] if model.parts else None
    arch = main.architecture if main else None
    try:
        if main is None:
            raise CannotEstimate("no model file")
        shape = model_shape(main.metadata, arch)
        if n_ctx is None:
            n_ctx = min(DEFAULT_CONTEXT, shape.trained_context or DEFAULT_CONTEXT)
        result = Estimate(n_ctx=n_ctx, cache_type=kind.name, architecture=arch, shape=shape)
        _add_weights(result, model, shape.n_layer)
    except CannotEstimate as exc:
        return Estimate(n_ctx=n_ctx or 0, cache_type=kind.name, architecture=arch, error=str(exc))
    result.kv_layer_bytes = shape.kv_layer_bytes(n_ctx, kind, kind)
    result.compute_bytes = compute_buffer_bytes(shape, n_ctx)
    return result


def at_context(base: Estimate, n_ctx: int) -> Estimate:
    """The same model's estimate at another context length (no header is read again)."""
    if base.error or base.shape is None:
        return Estimate(n_ctx=n_ctx, cache_type=base.cache_type, architecture=base.architecture,
                        error=base.error)  # fmt: skip
    kind = cache_type(base.cache_type)
    return Estimate(
        n_ctx=n_ctx, cache_type=base.cache_type, architecture=base.architecture, shape=base.shape,
        layer_weight_bytes=base.layer_weight_bytes, other_weight_bytes=base.other_weight_bytes,
        input_weight_bytes=base.input_weight_bytes, output_tied=base.output_tied,
        mmproj_bytes=base.mmproj_bytes, kv_layer_bytes=base.shape.kv_layer_bytes(n_ctx, kind, kind),
        compute_bytes=compute_buffer_bytes(base.shape, n_ctx),
    )  # fmt: skip


def compute_buffer_bytes(shape: ModelShape, n_ctx: int) -> int:
    """The compute-buffer approximation documented at the top of this module."""
    mask = 0
    if shape.layers is not None and shape.kind != "recurrent":
        mask = 2 * pad(n_ctx)
        sliding = next((layer for layer in shape.layers if layer.sliding), None)
        if sliding is not None:
            mask += 2 * shape.cells(n_ctx, sliding)  # the window cache has a mask of its own
    widest = 4 * shape.n_embd + 2 * shape.n_ff + 4 * shape.ssm_inner
    return N_UBATCH * (4 * shape.n_vocab + mask + 4 * widest)


def _add_weights(result: Estimate, model: ModelFiles, n_layer: int) -> None:
    """Tensor data by block across every part, checked against the files' size."""
    layers = [0] * n_layer
    other = 0
    has_output = False
    for part in model.parts:
        table = part.tensor_bytes
        if table is None:
            raise CannotEstimate("a tensor has a ggml type this reader does not know")
        for block, nbytes in table.layers.items():
            if block >= n_layer:
                raise CannotEstimate(f"tensor block {block} but the header says {n_layer} layers")
            layers[block] += nbytes
        other += table.other
        result.input_weight_bytes += table.input
        has_output = has_output or table.has_output
    result.output_tied = not has_output
    mmproj = 0
    if model.mmproj is not None:
        if model.mmproj.tensor_bytes is None:
            raise CannotEstimate("an mmproj tensor has a ggml type this reader does not know")
        mmproj = model.mmproj.tensor_bytes.total
    total = sum(layers) + other + mmproj
    limit = model.file_bytes if model.file_bytes is not None else MAX_WEIGHT_BYTES
    if total > limit:
        raise CannotEstimate(
            f"the tensor table claims {total} bytes of data, more than the files hold"
        )
    result.layer_weight_bytes, result.other_weight_bytes, result.mmproj_bytes = layers, other, mmproj
