"""The command line's entry: a closed output pipe, unknown options, and a store that is not one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, cli_subprocess_env
from tests.unit.test_store_confinement import run_cli


def gguf_tui(config_file: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "gguf_tui", *args],
        env=env or cli_subprocess_env(config_file),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


# ---- a closed pipe (`gguf-tui ls --json | head -3`) -------------------------------------------


@pytest.fixture
def crowded_store(store: Path) -> Path:
    """Enough (empty, unmanaged) files that `ls` writes far more than a pipe holds."""
    store.mkdir(parents=True)
    for number in range(400):
        (store / f"model-{number:04d}.gguf").touch()
    return store


@pytest.mark.parametrize("args", [["ls", "--json"], ["ls"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(config_file, crowded_store, args):
    process = subprocess.Popen(
        [PYTHON, "-m", "gguf_tui", *args],
        env=cli_subprocess_env(config_file),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.read(64)  # like `head`: read a little, then close the pipe
    process.stdout.close()
    err = process.stderr.read().decode()
    code = process.wait(60)
    assert err == ""  # no "Broken pipe", no traceback
    assert code == 141  # what a Unix tool stopped by SIGPIPE reports (128 + 13)


def test_a_reader_that_reads_everything_still_gets_exit_0(config_file, crowded_store):
    result = gguf_tui(config_file, "ls", "--json")
    assert result.returncode == 0 and result.stderr == ""


# ---- usage errors name what was wrong, exit 2 --------------------------------------------------


@pytest.mark.parametrize(
    "args, named",
    [
        (["pull", "--bogus"], "--bogus"),
        (["pull", "--bogus", "owner/repo:Q4_K_M"], "--bogus"),
        (["prune", "--max-size", "1G", "--nope"], "--nope"),
        (["rm", "-z", "model"], "-z"),
        (["ls", "--store", "/tmp"], "--store"),
    ],
)
def test_an_unknown_option_is_named(config_file, args, named):
    result = gguf_tui(config_file, *args)
    assert result.returncode == 2
    assert f"unknown option {named}" in result.stderr
    assert "required" not in result.stderr


def test_abbreviated_and_valued_options_still_parse(config_file, store):
    store.mkdir()
    result = gguf_tui(config_file, "prune", "--max-s", "1G", "--dry", "--json")
    assert result.returncode == 0, result.stderr
    result = gguf_tui(config_file, "prune", "--unused-for=30d", "--dry-run")
    assert result.returncode == 0, result.stderr


def test_a_usage_error_from_a_catalog_kind_maps_to_exit_2():
    from gguf_tui.cli import UsageError, is_usage_error
    from gguf_tui.hub.errors import HubError

    assert is_usage_error(UsageError("x"))
    assert is_usage_error(HubError("not a REF", kind="bad_ref"))
    assert not is_usage_error(HubError("gone", kind="not_found"))


# ---- --store naming a file or nothing ----------------------------------------------------------

READERS = [["ls"], ["info", "m"], ["verify"], ["rm", "m", "--yes"],
           ["prune", "--partials", "--yes"], ["status"], ["path", "m"]]


@pytest.mark.parametrize("args", READERS + [["pull", "http://127.0.0.1:9/m.gguf"],
                                            ["import", "/nonexistent.gguf"]])
def test_a_store_that_is_a_file_is_a_usage_error(config_file, tmp_path, args):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    result = gguf_tui(config_file, "--store", str(a_file), *args)
    assert result.returncode == 2, result.stderr
    assert f"the store {a_file} (from --store) is not a folder" in result.stderr
    assert "Errno" not in result.stderr


@pytest.mark.parametrize("args", READERS)
def test_a_missing_store_is_a_usage_error_for_reading_commands(config_file, tmp_path, args):
    missing = tmp_path / "typo"
    result = gguf_tui(config_file, "--store", str(missing), *args)
    assert result.returncode == 2, result.stderr
    assert f"the store {missing} (from --store) does not exist" in result.stderr
    assert not missing.exists()


def test_the_store_from_the_environment_is_named_as_such(config_file, tmp_path):
    env = cli_subprocess_env(config_file) | {"GGUF_TUI_STORE": str(tmp_path / "typo")}
    result = gguf_tui(config_file, "ls", env=env)
    assert result.returncode == 2
    assert "(from GGUF_TUI_STORE) does not exist" in result.stderr


def test_the_default_store_may_be_missing_on_first_use(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    result = subprocess.run([PYTHON, "-m", "gguf_tui", "ls"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "no models in the store" in result.stdout


async def test_pull_creates_a_missing_store(config_file, tmp_path, server, gguf_bytes):
    url = server.add("/Fresh-Q4_K_M.gguf", gguf_bytes)
    fresh = tmp_path / "new" / "store"
    result = await run_cli(config_file, "--store", str(fresh), "pull", url)
    assert result.code == 0, result.err
    assert (fresh / "Fresh-Q4_K_M.gguf").exists()


def test_a_store_under_a_file_cannot_be_created(config_file, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = gguf_tui(config_file, "--store", str(a_file / "store"), "pull",
                      "http://127.0.0.1:9/m.gguf")
    assert result.returncode == 2
    assert f"{a_file} is not a folder" in result.stderr
