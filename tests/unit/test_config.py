"""Config loading: strict validation, clear errors, exit 2, precedence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gguf_tui.cli import main
from gguf_tui.config import ConfigError, config_field_names, load_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_unknown_key_names_file_key_and_close_match(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text("downloads:\n  concurency: 4\n")
    assert main(["--config", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert "downloads.concurency" in err
    assert "did you mean 'concurrency'" in err


def test_wrong_type_names_key(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text("downloads:\n  stall_timeout: soon\n")
    assert main(["--config", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert "downloads.stall_timeout" in err and str(path) in err


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("storee: /x\n", "did you mean 'store'"),
        ("downloads: 3\n", "'downloads' must be a mapping"),
        ("downloads:\n  concurrency: 0\n", "must be between 1 and 64"),
        ("downloads:\n  concurrency: true\n", "expected a whole number"),
        ("downloads:\n  max_rate: fast\n", "not a size"),
        ("hub:\n  endpoint: ftp://x\n", "expected an http(s) URL"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("downloads: [\n", "not valid YAML"),
    ],
)
def test_bad_values(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(path)


def test_precedence_option_over_env_over_file(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text(f"store: {tmp_path / 'from-file'}\ndownloads:\n  max_rate: 50M\n")
    assert load_config(path).store == tmp_path / "from-file"
    assert load_config(path).downloads.max_rate == 50 * 1024 * 1024
    monkeypatch.setenv("GGUF_TUI_STORE", str(tmp_path / "from-env"))
    assert load_config(path).store == tmp_path / "from-env"
    assert load_config(path, store=tmp_path / "from-option").store == tmp_path / "from-option"


def test_missing_explicit_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_example_config_documents_every_key_and_loads():
    example = REPO_ROOT / "config.example.yaml"
    raw = yaml.safe_load(example.read_text())
    for section, names in config_field_names().items():
        documented = raw if section == "" else raw[section]
        assert set(names) <= set(documented), f"undocumented keys in {section or 'top level'}"
    config = load_config(example)
    assert config.downloads.checksum_retries == 2
    assert config.downloads.stall_timeout == 30
