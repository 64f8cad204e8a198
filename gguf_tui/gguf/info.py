"""`GGUFInfo`: the facts a GGUF header gives about a model, derived from its metadata."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from gguf_tui.gguf.types import ggml_type_name, quant_name_from_file_type

JSON_STRING_MAX = 256


@dataclass(frozen=True)
class TensorBytes:
    """Bytes of tensor data by block (`blk.N.*`, keyed by N) and outside the blocks.

    What a memory estimate needs to say how many layers fit on a GPU: the repeating blocks are
    what llama.cpp offloads one by one, the rest (embeddings, output) is placed whole.
    """

    layers: dict[int, int]
    other: int  # everything outside the blocks, `input` included
    input: int = 0  # the token embeddings (`token_embd.*`): llama.cpp keeps them on the CPU
    has_output: bool = False  # an `output.weight` of its own (else tied to the embeddings)

    @property
    def total(self) -> int:
        return sum(self.layers.values()) + self.other


@dataclass
class GGUFInfo:
    """What a GGUF header says about a model (one file: one split part, or an mmproj)."""

    version: int
    architecture: str | None
    name: str | None
    parameter_count: int | None
    file_type: int | None
    quantization: str | None
    context_length: int | None
    split_index: int | None  # 0-based, as stored in split.no
    split_count: int | None
    projector_type: str | None
    tensor_count: int
    kv_count: int
    license: str | None
    alignment: int
    tensor_data_offset: int
    # Every KV: scalars and short strings as values, big arrays as "<array of N str>".
    metadata: dict[str, Any] = field(default_factory=dict)
    # Smallest file size that holds every tensor's data: a shorter file is truncated.
    # None when a tensor has a ggml type this reader does not know.
    min_file_size: int | None = None
    # Tensor data sizes from the tensor table; None when a tensor has an unknown ggml type.
    tensor_bytes: TensorBytes | None = None

    @property
    def is_mmproj(self) -> bool:
        return self.architecture == "clip"

    @property
    def split_tensor_count(self) -> int | None:
        """Tensors across all split parts (`split.tensors.count`), None if not split."""
        return _uint_or_none(self.metadata.get("split.tensors.count"))

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict of the facts, with long metadata strings cut short."""
        out = asdict(self)
        tensor_bytes = self.tensor_bytes
        out["tensor_bytes"] = None if tensor_bytes is None else {
            "total": tensor_bytes.total, "other": tensor_bytes.other, "blocks": len(tensor_bytes.layers),
        }  # fmt: skip
        for key, value in out.items():
            if key != "metadata":
                out[key] = _json_value(value)
        out["metadata"] = {key: _json_value(value) for key, value in self.metadata.items()}
        return out


def build_info(
    metadata: dict[str, Any],
    *,
    element_total: int,
    matrix_elements_by_type: Counter[int],
    version: int,
    tensor_count: int,
    kv_count: int,
    alignment: int,
    tensor_data_offset: int,
    min_file_size: int | None,
    tensor_bytes: TensorBytes | None = None,
) -> GGUFInfo:
    """Turn parsed metadata and tensor statistics into a `GGUFInfo`."""
    arch = _str_or_none(metadata.get("general.architecture"))
    file_type = _uint_or_none(metadata.get("general.file_type"))
    if file_type is not None:
        quantization = quant_name_from_file_type(file_type)
    else:
        quantization = _dominant_type_name(matrix_elements_by_type)
    parameter_count = _uint_or_none(metadata.get("general.parameter_count"))
    if parameter_count is None and tensor_count:
        parameter_count = element_total
    return GGUFInfo(
        version=version,
        architecture=arch,
        name=_str_or_none(metadata.get("general.name")),
        parameter_count=parameter_count,
        file_type=file_type,
        quantization=quantization,
        context_length=_uint_or_none(metadata.get(f"{arch}.context_length")) if arch else None,
        split_index=_uint_or_none(metadata.get("split.no")),
        split_count=_uint_or_none(metadata.get("split.count")),
        projector_type=_projector_type(metadata) if arch == "clip" else None,
        tensor_count=tensor_count,
        kv_count=kv_count,
        license=_str_or_none(metadata.get("general.license")),
        alignment=alignment,
        tensor_data_offset=tensor_data_offset,
        metadata=metadata,
        min_file_size=min_file_size,
        tensor_bytes=tensor_bytes,
    )


def _uint_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _str_or_none(value: Any) -> str | None:
    if isinstance(value, str) and not (value.startswith("<string of ") and value.endswith(">")):
        return value
    return None


def _dominant_type_name(matrix_elements_by_type: Counter[int]) -> str | None:
    """Quantisation guessed from the ggml type holding most matrix elements, e.g. 'Q4_K'."""
    ranked = [(count, ggml_type) for ggml_type, count in matrix_elements_by_type.items() if count]
    return ggml_type_name(max(ranked)[1]) if ranked else None


def _projector_type(metadata: dict[str, Any]) -> str | None:
    """An mmproj's projector: `clip.projector_type`, else what its per-modality keys say."""
    explicit = _str_or_none(metadata.get("clip.projector_type"))
    if explicit:
        return explicit
    per_modality = (
        _str_or_none(metadata.get(f"clip.{modality}.projector_type"))
        for modality in ("vision", "audio")
    )
    named = list(dict.fromkeys(p for p in per_modality if p))
    if named:
        return "+".join(named)
    if metadata.get("clip.has_llava_projector") is True:
        return "mlp"  # what clip.cpp assumes for llava-era files without a projector type
    encoders = [m for m in ("vision", "audio") if metadata.get(f"clip.has_{m}_encoder") is True]
    return "+".join(encoders) or None


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= JSON_STRING_MAX else value[: JSON_STRING_MAX - 1] + "…"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    return value


def model_facts(infos: list[GGUFInfo]) -> dict:
    """Manifest GGUF facts for a model from its files' headers (parameters summed over parts)."""
    main = [info for info in infos if not info.is_mmproj] or infos
    facts = main[0].to_json()
    counts = [info.parameter_count for info in main]
    if len(main) > 1 and "general.parameter_count" not in main[0].metadata and None not in counts:
        facts["parameter_count"] = sum(counts)  # type: ignore[arg-type]
    return facts
