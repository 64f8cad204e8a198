"""REF parsing: every accepted form, and refusals, without any network."""

from __future__ import annotations

import pytest

from gguf_tui.hub import HubError, HubRef, is_hub_ref, parse_ref

ENDPOINT = "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("bartowski/Qwen3-8B-GGUF", HubRef("bartowski/Qwen3-8B-GGUF")),
        ("bartowski/Qwen3-8B-GGUF:Q4_K_M", HubRef("bartowski/Qwen3-8B-GGUF", quant="Q4_K_M")),
        ("bartowski/Qwen3-8B-GGUF:q4_k_m", HubRef("bartowski/Qwen3-8B-GGUF", quant="Q4_K_M")),
        ("hf.co/o/r:Q8_0", HubRef("o/r", quant="Q8_0")),
        ("huggingface.co/o/r:Q8_0", HubRef("o/r", quant="Q8_0")),
        ("https://huggingface.co/o/r:Q8_0", HubRef("o/r", quant="Q8_0")),
        ("https://huggingface.co/o/r", HubRef("o/r")),
        (f"{ENDPOINT}/o/r:iq4_xs", HubRef("o/r", quant="IQ4_XS")),
        ("o/r:UD-Q4_K_XL", HubRef("o/r", quant="UD-Q4_K_XL")),
        ("o/r@v1.0:Q4_K_M", HubRef("o/r", quant="Q4_K_M", revision="v1.0")),
        ("o/r:Q4_K_M@v1.0", HubRef("o/r", quant="Q4_K_M", revision="v1.0")),
        ("o/r@refs/pr/3:Q4_K_M", HubRef("o/r", quant="Q4_K_M", revision="refs/pr/3")),
        ("o/r/model-Q4_K_M.gguf", HubRef("o/r", path="model-Q4_K_M.gguf")),
        ("o/r/sub/dir/model.gguf", HubRef("o/r", path="sub/dir/model.gguf")),
        ("hf.co/o/r/model.gguf", HubRef("o/r", path="model.gguf")),
        ("o/r/model.gguf@dev", HubRef("o/r", path="model.gguf", revision="dev")),
        ("o/r@dev/model.gguf", HubRef("o/r", path="model.gguf", revision="dev")),
        (
            "https://huggingface.co/o/r/resolve/main/sub/m.gguf?download=true",
            HubRef("o/r", path="sub/m.gguf"),
        ),
        ("https://huggingface.co/o/r/blob/abc123/m.gguf", HubRef("o/r", path="m.gguf", revision="abc123")),
        ("https://huggingface.co/o/r/tree/dev", HubRef("o/r", revision="dev")),
        (f"{ENDPOINT}/o/r/resolve/refs%2Fpr%2F1/m.gguf", HubRef("o/r", path="m.gguf", revision="refs/pr/1")),
    ],
)
def test_parse_ref_forms(ref: str, expected: HubRef) -> None:
    assert parse_ref(ref, ENDPOINT) == expected


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        ("https://example.com/model.gguf", "bad_ref"),
        ("justaname", "bad_ref"),
        ("o/r/readme.md", "bad_ref"),
        ("o/r:Q4 K M", "bad_ref"),
        ("o/../r:Q4_K_M", "bad_ref"),
        ("o/r/../../escape.gguf", "unsafe_path"),
        ("o/r/a\\b.gguf", "unsafe_path"),
        ("o/r/bad\x07dir/m.gguf", "unsafe_path"),
        ("o/r@v1:Q4_K_M@v2", "bad_ref"),
        ("", "bad_ref"),
    ],
)
def test_parse_ref_refusals(ref: str, kind: str) -> None:
    with pytest.raises(HubError) as caught:
        parse_ref(ref, ENDPOINT)
    assert caught.value.kind == kind
    assert "\x07" not in str(caught.value)


def test_is_hub_ref() -> None:
    assert is_hub_ref("o/r:Q4_K_M", ENDPOINT)
    assert is_hub_ref("https://huggingface.co/o/r/resolve/main/m.gguf", ENDPOINT)
    assert not is_hub_ref("https://example.com/files/m.gguf", ENDPOINT)
