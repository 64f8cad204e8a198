"""Nothing outside the store is ever deleted or written through a symlink planted in `.gguf-tui/`.

On a shared box another user can replace the store's hidden folder, or a folder below it, with a
link to a directory of theirs (or of the victim's). Every command that deletes or writes must
refuse such a store, naming the path, and leave the link's target alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from gguf_tui.store.layout import StoreLayout
from tests.conftest import PYTHON, CliResult, cli_subprocess_env
from tests.helpers.ggufgen import add_managed_model, make_gguf


async def run_cli(config_file: Path, *args: str) -> CliResult:
    """The real `gguf-tui ARGS` as its own process (the test's event loop keeps serving)."""
    process = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "gguf_tui", *args,
        env=cli_subprocess_env(config_file),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return CliResult(process.returncode, out.decode(), err.decode())


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return make_gguf(tmp_path / "src" / "Small-Q4_K_M.gguf", tensor_bytes=16 << 10)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside the store shaped like a hidden folder, full of files that must survive."""
    target = tmp_path / "victim"
    for sub in ("partials", "manifests", "locks", "jobs"):
        (target / sub).mkdir(parents=True)
    key = "f" * 32
    (target / "partials" / f"{key}.part").write_bytes(b"precious" * 1000)
    (target / "partials" / f"{key}.state.json").write_text(json.dumps({"dest": "x.gguf"}))
    (target / "partials" / "notes.txt").write_text("do not delete")
    (target / "manifests" / "notes.json").write_text("{}")
    (target / "locks" / "notes.lock").write_text("mine")
    (target / "jobs" / "notes.json").write_text("{}")
    (target / "sentinel.txt").write_text("do not delete")
    return target


def snapshot_of(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def plant(store: Path, linked: str, target: Path) -> Path:
    """Replace `store/<linked>` with a symlink to `target`; returns the link's path."""
    link = store / linked
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return link


def link_target(elsewhere: Path, linked: str) -> Path:
    return elsewhere if linked == ".gguf-tui" else elsewhere / Path(linked).name


LINKED = [".gguf-tui", ".gguf-tui/partials", ".gguf-tui/manifests", ".gguf-tui/locks"]


@pytest.mark.parametrize("linked", [".gguf-tui", ".gguf-tui/partials"])
async def test_prune_partials_never_deletes_through_a_linked_hidden_folder(
    config_file, store, elsewhere, linked
):
    StoreLayout(store).ensure()
    before = snapshot_of(elsewhere)
    link = plant(store, linked, link_target(elsewhere, linked))

    result = await run_cli(config_file, "prune", "--partials", "--yes")

    assert result.code == 1, (result.out, result.err)
    assert str(link) in result.err and "symlink" in result.err
    assert "Traceback" not in result.err
    assert snapshot_of(elsewhere) == before


@pytest.mark.parametrize("linked", LINKED)
async def test_rm_refuses_a_store_with_a_linked_hidden_folder(
    config_file, store, elsewhere, model_file, linked
):
    add_managed_model(store, "small", {"small.gguf": model_file})
    before = snapshot_of(elsewhere)
    link = plant(store, linked, link_target(elsewhere, linked))

    result = await run_cli(config_file, "rm", "small", "--yes")

    assert result.code == 1, (result.out, result.err)
    assert str(link) in result.err
    assert snapshot_of(elsewhere) == before
    assert (store / "small.gguf").exists()  # nothing deleted, not even the model's own file


@pytest.mark.parametrize("linked", [*LINKED, ".gguf-tui/jobs"])
async def test_pull_writes_nothing_through_a_linked_hidden_folder(
    config_file, store, elsewhere, model_file, server, linked
):
    url = server.add("/Small-Q4_K_M.gguf", model_file)
    StoreLayout(store).ensure()
    before = snapshot_of(elsewhere)
    link = plant(store, linked, link_target(elsewhere, linked))

    result = await run_cli(config_file, "pull", url)

    assert result.code == 1, (result.out, result.err)
    assert str(link) in result.err
    assert "Traceback" not in result.err
    assert snapshot_of(elsewhere) == before
    assert not (store / "Small-Q4_K_M.gguf").exists()


@pytest.mark.parametrize("linked", LINKED)
async def test_import_writes_nothing_through_a_linked_hidden_folder(
    config_file, store, elsewhere, model_file, linked
):
    StoreLayout(store).ensure()
    before = snapshot_of(elsewhere)
    link = plant(store, linked, link_target(elsewhere, linked))

    result = await run_cli(config_file, "import", "--copy", str(model_file))

    assert result.code == 1, (result.out, result.err)
    assert str(link) in result.err
    assert snapshot_of(elsewhere) == before
    assert not (store / model_file.name).exists()


async def test_a_reading_command_warns_and_reads_nothing_through_the_link(
    config_file, store, elsewhere
):
    StoreLayout(store).ensure()
    link = plant(store, ".gguf-tui/partials", elsewhere / "partials")
    result = await run_cli(config_file, "ls", "--json")
    assert result.code == 0, result.err
    assert str(link) in result.err  # a warning naming the link
    assert json.loads(result.out)["partials"] == 0  # the victim's files are not "partials"


def test_ensure_refuses_a_linked_subfolder_and_writes_nothing_there(store, elsewhere):
    layout = StoreLayout(store)
    layout.ensure()
    plant(store, ".gguf-tui/locks", elsewhere / "locks")
    before = snapshot_of(elsewhere)
    with pytest.raises(OSError, match="symlink"):
        layout.ensure()
    assert snapshot_of(elsewhere) == before
    assert os.path.islink(layout.locks_dir)


async def test_path_never_rewrites_a_manifest_through_a_linked_folder(
    config_file, store, elsewhere, model_file
):
    written = add_managed_model(store, "small", {"small.gguf": model_file})
    victims = elsewhere / "manifests"
    written.rename(victims / written.name)  # the victim's own manifest, found through the link
    before = snapshot_of(elsewhere)
    plant(store, ".gguf-tui/manifests", victims)

    result = await run_cli(config_file, "path", "small")

    assert str(store / ".gguf-tui" / "manifests") in result.err
    assert snapshot_of(elsewhere) == before
