"""GGUF header reader: the facts a model store needs, read without touching tensor data."""

from gguf_tui.gguf.info import GGUFInfo, model_facts
from gguf_tui.gguf.reader import GGUFError, GGUFTruncated, parse_gguf_bytes, read_gguf
from gguf_tui.gguf.types import ggml_type_name, quant_name_from_file_type

__all__ = [
    "GGUFError",
    "GGUFInfo",
    "GGUFTruncated",
    "ggml_type_name",
    "model_facts",
    "parse_gguf_bytes",
    "quant_name_from_file_type",
    "read_gguf",
]
