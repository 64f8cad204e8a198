"""The numbering of ggml tensor types and llama.cpp file types, and their names."""

from __future__ import annotations

# llama.cpp `enum llama_ftype` (include/llama.h) -> the quantisation name used in file names.
FILE_TYPE_NAMES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 7: "Q8_0", 8: "Q5_0",
    9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
    15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS",
    21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S",
    27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    33: "Q4_0_4_4", 34: "Q4_0_4_8", 35: "Q4_0_8_8", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}  # fmt: skip
FILE_TYPE_GUESSED = 1024  # LLAMA_FTYPE_GUESSED: a flag or'ed onto a type, not a type

# ggml `enum ggml_type` (ggml.h) -> (name, elements per block, bytes per block).
_QK_K = 256
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
    10: ("Q2_K", _QK_K, 84), 11: ("Q3_K", _QK_K, 110), 12: ("Q4_K", _QK_K, 144),
    13: ("Q5_K", _QK_K, 176), 14: ("Q6_K", _QK_K, 210), 15: ("Q8_K", _QK_K, 292),
    16: ("IQ2_XXS", _QK_K, 66), 17: ("IQ2_XS", _QK_K, 74), 18: ("IQ3_XXS", _QK_K, 98),
    19: ("IQ1_S", _QK_K, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", _QK_K, 110),
    22: ("IQ2_S", _QK_K, 82), 23: ("IQ4_XS", _QK_K, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", _QK_K, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", _QK_K, 54), 35: ("TQ2_0", _QK_K, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}  # fmt: skip


def quant_name_from_file_type(ft: int) -> str | None:
    """Name of a llama.cpp file type (`general.file_type`), e.g. 15 -> 'Q4_K_M'; None if unknown."""
    if isinstance(ft, bool) or not isinstance(ft, int) or ft < 0:
        return None
    return FILE_TYPE_NAMES.get(ft & ~FILE_TYPE_GUESSED)


def ggml_type_name(ggml_type: int) -> str | None:
    """Name of a ggml tensor type, e.g. 12 -> 'Q4_K'; None if unknown."""
    entry = GGML_TYPES.get(ggml_type)
    return entry[0] if entry else None


def ggml_nbytes(ggml_type: int, dims: tuple[int, ...]) -> int | None:
    """Bytes of tensor data for a shape (innermost dimension first); None if not computable."""
    entry = GGML_TYPES.get(ggml_type)
    if entry is None:
        return None
    _, block_elements, block_bytes = entry
    if dims and dims[0] % block_elements:
        return None  # rows must hold whole blocks; a file claiming otherwise is not loadable
    elements = 1
    for dim in dims:
        elements *= dim
    return elements // block_elements * block_bytes
