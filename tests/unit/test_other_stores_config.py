"""The `other_stores` config section: defaults from each tool's environment, lists replace
them, an empty list turns a tool off, and typos are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gguf_tui.config import ConfigError, load_config
from gguf_tui.store.others import configured_places


def test_null_keeps_the_default_a_list_replaces_it_and_empty_turns_off(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("other_stores:\n  hf_cache: null\n  lmstudio: [~/lms]\n  ollama: []\n")
    config = load_config(path)
    env = {"HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub")}
    places = configured_places(config, env)
    assert places["hf"] == [tmp_path / "hub"]
    assert places["lmstudio"] == [Path.home() / "lms"]
    assert places["ollama"] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("other_stores:\n  olama: []\n", "unknown key 'other_stores.olama' (did you mean 'ollama'?)"),
        ("other_stores:\n  hf_cache: /x\n", "'other_stores.hf_cache': expected a list of paths"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        load_config(path)
