"""A model's memory shape from its GGUF metadata: what llama.cpp allocates per layer and token.

Follows llama.cpp's memory model (src/llama-hparams.cpp, llama-kv-cache.cpp,
llama-kv-cache-iswa.cpp, llama-memory-recurrent.cpp):

- per attention layer and cached token: K is `key_length × n_head_kv(layer)` elements and V is
  `value_length × n_head_kv(layer)`, each in the cache type (rows of ggml blocks);
- MLA (deepseek2-style: `attention.key_length_mla` and `value_length_mla` set): the cache holds
  the compressed latent only, K of `key_length` (= kv_lora_rank + rope dims) with one KV head,
  and no V (llama.cpp reads V as a view of K);
- sliding-window layers cache `min(n_ctx, pad(window + n_ubatch, 256))` cells, not `n_ctx`;
- recurrent layers (mamba, rwkv, the SSM layers of hybrids) keep a fixed F32 state per sequence:
  `(d_conv - 1) × (d_inner + 2 × n_group × d_state) + d_state × d_inner` elements for mamba,
  `token_shift_count × n_embd + n_embd × head_size` for rwkv.

Every value read from the header is bounded: a header that lies (absurd head counts, negative
sizes) raises `CannotEstimate`, never yields a giant number shown as real.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from gguf_tui.gguf.types import GGML_TYPES

CTX_PAD = 256  # llama.cpp pads the KV cache size to a multiple of 256 cells
N_UBATCH = 512  # llama.cpp's default physical batch (what a sliding window keeps beyond itself)
MAX_LAYERS = 4096
MAX_HEADS = 16384
MAX_HEAD_LENGTH = 65536
MAX_EMBD = 1 << 20
MAX_WINDOW = 1 << 24
MAX_KV_BYTES_PER_TOKEN = 64 << 20  # 64 MiB a token: ~1000x today's largest models
MAX_STATE_ELEMENTS = 1 << 34
F32_BYTES = 4

# Architectures llama.cpp runs as plain (GQA) attention with a per-token KV cache. Anything not
# listed here or below gets "KV unknown" rather than a guessed figure.
ATTENTION_ARCHS = frozenset("""
llama llama4 qwen qwen2 qwen2moe qwen2vl qwen3 qwen3moe qwen3vl qwen3vlmoe mistral3 phi2 phi3
phimoe gemma gemma2 gemma3 gemma-embedding starcoder starcoder2 stablelm command-r cohere2 olmo
olmo2 olmoe granite granitemoe glm4 glm4moe chatglm deepseek deepseek2 internlm2 exaone exaone4
gpt2 gptj gptneox falcon baichuan orion minicpm minicpm3 nemotron mpt bloom refact codeshell
xverse dbrx arctic openelm bitnet t5 jais grok gpt-oss hunyuan-moe hunyuan-dense ernie4_5
ernie4_5-moe smollm3 seed_oss apertus arcee dots1 bailingmoe bailingmoe2 plm mistral4
minimax-m2 deci plamo mellum afmoe exaone-moe cohere2moe smallthinker plamo3
""".split())  # fmt: skip
RECURRENT_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
# Hybrids whose recurrent layers are the ones with no KV heads (head_count_kv array with zeros).
HYBRID_BY_HEADS = frozenset({"jamba", "granitehybrid", "nemotron_h", "nemotron_h_moe"})
# ... and among those, where a layer with neither heads nor a feed-forward is the SSM one (the
# others without heads are MLP-only layers and hold no state).
HYBRID_NEEDS_NO_FF = frozenset({"nemotron_h", "nemotron_h_moe"})
HYBRID_ALL_LAYERS = frozenset({"falcon-h1"})  # every layer has both attention and an SSM
# The sliding-window layer pattern llama.cpp uses when the header has no
# `attention.sliding_window_pattern` (src/models/<arch>.cpp, load_swa_pattern(ml, n, dense_first)):
# with n, layer il uses the window when il % n < n - 1 (every n-th layer is global); with
# dense_first, when il % n != 0 (the first of every n is global).
SWA_PATTERNS: dict[str, tuple[int, bool]] = {
    "gemma2": (2, False), "gemma3": (6, False), "gemma-embedding": (6, False),
    "cohere2": (4, False), "cohere2moe": (4, True), "gpt-oss": (2, False), "llama4": (4, False),
    "exaone4": (4, False), "exaone-moe": (4, False), "olmo2": (4, False), "afmoe": (4, False),
    "smallthinker": (4, True), "plamo3": (8, False), "mellum": (4, False),
}  # fmt: skip
# gemma2 uses a 4096-token window when the header does not say (llama.cpp's default for it).
DEFAULT_WINDOWS = {"gemma2": 4096}

_PLACEHOLDER = re.compile(r"<(?:array|string) of (\d+)")


class CannotEstimate(Exception):
    """The header's numbers cannot be real (or are missing): no estimate, one line why."""


@dataclass(frozen=True)
class CacheType:
    """A KV cache element type by its ggml block size: `f16`, `q8_0`, `q4_0`, ..."""

    name: str
    block_elements: int
    block_bytes: int

    def row_bytes(self, elements: int) -> int:
        """ggml_row_size: whole blocks (llama.cpp needs rows of whole blocks for quant caches)."""
        return -(-elements // self.block_elements) * self.block_bytes


CACHE_TYPE_NAMES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")


def cache_type(name: str) -> CacheType:
    """The ggml type named `name` (llama.cpp's --cache-type-k spelling); ValueError if unknown."""
    wanted = name.strip().upper()
    if name.strip().lower() in CACHE_TYPE_NAMES:
        for type_name, block_elements, block_bytes in GGML_TYPES.values():
            if type_name == wanted:
                return CacheType(name.strip().lower(), block_elements, block_bytes)
    raise ValueError(f"unknown cache type {name!r} (expected one of {', '.join(CACHE_TYPE_NAMES)})")


@dataclass(frozen=True)
class LayerCache:
    """What one layer caches: K and V elements per token, the window, a fixed recurrent state."""

    k_elements: int = 0
    v_elements: int = 0
    sliding: bool = False
    state_elements: int = 0  # F32 elements per sequence, whatever the context


@dataclass(frozen=True)
class ModelShape:
    """The memory-relevant hyper-parameters of a model, validated."""

    architecture: str
    n_layer: int
    n_embd: int
    n_vocab: int
    n_ff: int  # the widest feed-forward layer (0 when the header does not say)
    trained_context: int | None
    layers: tuple[LayerCache, ...] | None  # None: the architecture's cache is not known
    window: int | None
    kind: str  # "attention", "mla", "recurrent", "hybrid" or "unknown"
    ssm_inner: int = 0  # d_inner of the SSM layers (their activations are this wide)

    @property
    def kv_known(self) -> bool:
        return self.layers is not None

    def cells(self, n_ctx: int, layer: LayerCache) -> int:
        """KV cells a layer allocates at context `n_ctx` (padded, sliding windows capped)."""
        size = pad(n_ctx)
        if layer.sliding and self.window:
            size = min(size, pad(self.window + N_UBATCH))
        return size

    def kv_layer_bytes(
        self, n_ctx: int, cache_k: CacheType, cache_v: CacheType
    ) -> list[int] | None:
        """Bytes each layer's cache takes at `n_ctx` (recurrent state included); None if unknown."""
        if self.layers is None:
            return None
        sizes = []
        for layer in self.layers:
            cells = self.cells(n_ctx, layer)
            nbytes = cells * (cache_k.row_bytes(layer.k_elements) if layer.k_elements else 0)
            nbytes += cells * (cache_v.row_bytes(layer.v_elements) if layer.v_elements else 0)
            sizes.append(nbytes + layer.state_elements * F32_BYTES)
        return sizes


def pad(n: int, to: int = CTX_PAD) -> int:
    return -(-n // to) * to


def model_shape(metadata: dict[str, Any], architecture: str | None) -> ModelShape:
    """The shape of a model from its (first part's) metadata; raises CannotEstimate."""
    if not architecture:
        raise CannotEstimate("the header names no architecture")
    shape = _model_shape(metadata, architecture)
    inner = _Reader(metadata, architecture).int("ssm.inner_size", 0, MAX_EMBD, default=0)
    return replace(shape, ssm_inner=inner)


def _model_shape(metadata: dict[str, Any], arch: str) -> ModelShape:
    reader = _Reader(metadata, arch)
    n_layer = reader.int("block_count", 1, MAX_LAYERS)
    n_embd = reader.int("embedding_length", 1, MAX_EMBD, default=0)  # 0: missing
    n_vocab = _vocab_size(metadata, arch)
    n_ff = max(reader.per_layer("feed_forward_length", n_layer, 0, 1 << 24)) if reader.has(
        "feed_forward_length") else 0
    trained = reader.int("context_length", 1, 1 << 31, default=0) or None
    known = arch in ATTENTION_ARCHS or arch in RECURRENT_ARCHS or arch in HYBRID_BY_HEADS
    known = known or arch in HYBRID_ALL_LAYERS
    if not known:
        return ModelShape(arch, n_layer, n_embd, n_vocab, n_ff, trained, None, None, "unknown")
    if arch in RECURRENT_ARCHS:
        state = _recurrent_state(reader, n_embd)
        layers = tuple(LayerCache(state_elements=state) for _ in range(n_layer))
        shape = ModelShape(arch, n_layer, n_embd, n_vocab, n_ff, trained, layers, None, "recurrent")
        return _checked(shape)
    if not n_embd:
        raise CannotEstimate(f"{arch}.embedding_length is missing")
    # Zero heads in a layer is real: the SSM or MLP-only layers of hybrids (nemotron_h, jamba).
    n_head = reader.per_layer("attention.head_count", n_layer, 0, MAX_HEADS)
    if not max(n_head):
        raise CannotEstimate(f"{arch}.attention.head_count is 0 in every layer")
    n_head_kv = (
        reader.per_layer("attention.head_count_kv", n_layer, 0, MAX_HEADS)
        if reader.has("attention.head_count_kv") else n_head
    )  # fmt: skip
    head_default = n_embd // max(n_head) if max(n_head) else 0
    key_length = reader.int("attention.key_length", 1, MAX_HEAD_LENGTH, default=head_default)
    value_length = reader.int("attention.value_length", 1, MAX_HEAD_LENGTH, default=key_length)
    if not key_length:
        raise CannotEstimate(f"{arch}: no key length and no head count to derive it from")
    mla = reader.has("attention.key_length_mla") and reader.has("attention.value_length_mla")
    window = reader.int(
        "attention.sliding_window", 0, MAX_WINDOW, default=DEFAULT_WINDOWS.get(arch, 0)
    ) or None
    sliding = _sliding_layers(reader, arch, n_layer) if window else [False] * n_layer
    recurrent = [False] * n_layer
    state = 0  # of a recurrent layer
    shared_state = 0  # of every layer (attention and SSM side by side)
    if arch in HYBRID_BY_HEADS:
        recurrent = [heads == 0 for heads in n_head_kv]
        if arch in HYBRID_NEEDS_NO_FF and isinstance(reader.raw("feed_forward_length"), list):
            ff_per_layer = reader.per_layer("feed_forward_length", n_layer, 0, 1 << 24)
            recurrent = [r and ff == 0 for r, ff in zip(recurrent, ff_per_layer)]
        state = _recurrent_state(reader, n_embd)
    elif arch in HYBRID_ALL_LAYERS:
        state = shared_state = _recurrent_state(reader, n_embd)
    layers = []
    for il in range(n_layer):
        if recurrent[il]:
            layers.append(LayerCache(state_elements=state))
            continue
        heads = n_head_kv[il]
        layers.append(
            LayerCache(
                k_elements=key_length * heads,
                v_elements=0 if mla else value_length * heads,
                sliding=sliding[il],
                state_elements=shared_state,
            )
        )
    kind = "mla" if mla else ("hybrid" if state else "attention")
    shape = ModelShape(arch, n_layer, n_embd, n_vocab, n_ff, trained, tuple(layers), window, kind)
    return _checked(shape)


def _checked(shape: ModelShape) -> ModelShape:
    """Reject a shape whose per-token or fixed cache cannot be real."""
    assert shape.layers is not None
    per_token = sum(2 * (layer.k_elements + layer.v_elements) for layer in shape.layers)
    if per_token > MAX_KV_BYTES_PER_TOKEN:
        raise CannotEstimate(
            f"the header claims {per_token >> 20} MiB of KV cache per token: not a real model"
        )
    state = sum(layer.state_elements for layer in shape.layers)
    if state > MAX_STATE_ELEMENTS:
        raise CannotEstimate("the header claims an absurd recurrent state size")
    return shape


def _recurrent_state(reader: _Reader, n_embd: int) -> int:
    """F32 elements of one layer's recurrent state (llama_hparams::n_embd_r + n_embd_s)."""
    if reader.has("wkv.head_size"):  # rwkv
        if not n_embd:
            raise CannotEstimate(f"{reader.arch}.embedding_length is missing")
        head_size = reader.int("wkv.head_size", 1, MAX_HEAD_LENGTH)
        token_shifts = reader.int("token_shift_count", 1, 64, default=2)
        return token_shifts * n_embd + n_embd * head_size
    d_conv = reader.int("ssm.conv_kernel", 0, 1024)
    d_inner = reader.int("ssm.inner_size", 1, MAX_EMBD)
    d_state = reader.int("ssm.state_size", 1, 1 << 16)
    n_group = reader.int("ssm.group_count", 0, 1 << 12, default=0)
    conv = max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state)
    return conv + d_state * d_inner


def _sliding_layers(reader: _Reader, arch: str, n_layer: int) -> list[bool]:
    """Which layers use the sliding window: a per-layer array in the header, else llama.cpp's
    pattern for the architecture; else none (every layer full: an over-, never an underestimate)."""
    key = "attention.sliding_window_pattern"
    if reader.has(key):
        value = reader.raw(key)
        if isinstance(value, list) and len(value) == n_layer and all(
            isinstance(v, (bool, int)) for v in value
        ):
            return [bool(v) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= n_layer:
            return _pattern(value, SWA_PATTERNS.get(arch, (0, False))[1], n_layer)
    if arch in SWA_PATTERNS:
        return _pattern(*SWA_PATTERNS[arch], n_layer)
    return [False] * n_layer


def _pattern(period: int, dense_first: bool, n_layer: int) -> list[bool]:
    """llama_hparams::set_swa_pattern: which layers use the window."""
    if period <= 0:
        return [True] * n_layer
    if dense_first:
        return [il % period != 0 for il in range(n_layer)]
    return [il % period < period - 1 for il in range(n_layer)]


def _vocab_size(metadata: dict[str, Any], arch: str) -> int:
    value = metadata.get(f"{arch}.vocab_size")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 24:
        return value
    tokens = metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list):
        return len(tokens)
    match = _PLACEHOLDER.match(tokens) if isinstance(tokens, str) else None
    return int(match.group(1)) if match else 0


class _Reader:
    """Typed, bounded access to `<arch>.<key>` values."""

    def __init__(self, metadata: dict[str, Any], arch: str) -> None:
        self.metadata = metadata
        self.arch = arch

    def has(self, key: str) -> bool:
        return f"{self.arch}.{key}" in self.metadata

    def raw(self, key: str) -> Any:
        return self.metadata.get(f"{self.arch}.{key}")

    def int(self, key: str, low: int, high: int, default: int | None = None) -> int:
        name = f"{self.arch}.{key}"
        if name not in self.metadata:
            if default is None:
                raise CannotEstimate(f"{name} is missing from the header")
            return default
        return _bounded(name, self.metadata[name], low, high)

    def per_layer(self, key: str, n_layer: int, low: int, high: int) -> list[int]:
        """A value per layer: stored as one number for all, or as an array of `n_layer`."""
        name = f"{self.arch}.{key}"
        value = self.metadata.get(name)
        if name not in self.metadata:
            raise CannotEstimate(f"{name} is missing from the header")
        if isinstance(value, list):
            if len(value) != n_layer:
                raise CannotEstimate(f"{name} has {len(value)} values for {n_layer} layers")
            return [_bounded(name, item, low, high) for item in value]
        if isinstance(value, str) and value.startswith("<array of"):
            raise CannotEstimate(f"{name} is a longer array than a real model has")
        return [_bounded(name, value, low, high)] * n_layer


def _bounded(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CannotEstimate(f"{name} is {_short(value)}, not a whole number")
    if value < low or value > high:
        raise CannotEstimate(f"{name} = {value} cannot be real (expected {low}..{high})")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
