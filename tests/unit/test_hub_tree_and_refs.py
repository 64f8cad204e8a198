"""Tree listings that name a path twice, and REFs the user mistyped (usage errors, exit 2).

The Hub imitation runs in the test's loop; `gguf-tui` runs as its own process.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gguf_tui.hub import HubClient, HubError, parse_ref
from gguf_tui.hub.errors import RefError
from tests.conftest import PYTHON, cli_subprocess_env, visible_files
from tests.helpers.hubsim import HubSim, gguf_bytes


@pytest.fixture
async def hub():
    async with HubSim() as sim:
        yield sim


async def _gguf_tui(config_file: Path, endpoint: str, *args: str) -> tuple[int, str, str]:
    env = cli_subprocess_env(config_file)
    env["HF_ENDPOINT"] = endpoint
    process = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "gguf_tui", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


def _tree_entry(hub: HubSim, repo: str, path: str, **changes) -> dict:
    """The tree entry the imitation lists for `path`, with `changes` applied."""
    sim_file = hub.repos[repo.lower()].files[path]
    lfs = {"oid": sim_file.advertised_sha256, "size": sim_file.size, "pointerSize": 134}
    lfs.update(changes)
    return {"type": "file", "oid": sim_file.git_oid, "size": lfs["size"], "path": path, "lfs": lfs}


# ---- 10.13: the same path listed twice --------------------------------------------------------


async def test_identical_duplicate_entries_download_once(hub, config_file, store):
    model = gguf_bytes(tensor_bytes=1 << 18, seed=7)
    hub.add_repo("acme/Dup-GGUF", {"Dup-Q4_K_M.gguf": model})
    hub.tree_extra["acme/dup-gguf"] = [_tree_entry(hub, "acme/Dup-GGUF", "Dup-Q4_K_M.gguf")]

    code, out, err = await _gguf_tui(config_file, hub.endpoint, "pull", "acme/Dup-GGUF:Q4_K_M")
    assert code == 0, err
    assert visible_files(store) == ["acme/Dup-GGUF/Dup-Q4_K_M.gguf"]
    [manifest_path] = (store / ".gguf-tui" / "manifests").glob("*.json")
    manifest = json.loads(manifest_path.read_text())
    assert [f["path"].rsplit("/", 1)[-1] for f in manifest["files"]] == ["Dup-Q4_K_M.gguf"]

    code, out, err = await _gguf_tui(config_file, hub.endpoint, "ls", "--json")
    assert code == 0, err
    assert str(len(model)) in out and str(2 * len(model)) not in out  # size not doubled

    code, out, err = await _gguf_tui(config_file, hub.endpoint, "files", "acme/Dup-GGUF", "--json")
    [group] = json.loads(out)["quants"]
    assert group["total_size"] == len(model) and len(group["files"]) == 1


async def test_conflicting_duplicate_entries_fail_before_any_download(hub, config_file, store):
    hub.add_repo("acme/Clash-GGUF", {"Clash-Q4_K_M.gguf": gguf_bytes(tensor_bytes=1 << 18, seed=8)})
    hub.tree_extra["acme/clash-gguf"] = [
        _tree_entry(hub, "acme/Clash-GGUF", "Clash-Q4_K_M.gguf", size=999, oid="b" * 64)
    ]
    code, out, err = await _gguf_tui(config_file, hub.endpoint, "pull", "acme/Clash-GGUF:Q4_K_M")
    assert code == 1, err
    line = err.strip().splitlines()[-1]
    assert "listed 'Clash-Q4_K_M.gguf' twice in acme/Clash-GGUF" in line, line
    assert hub.requests_to("cdn") == []  # nothing was downloaded...
    assert visible_files(store) == []  # ...or placed


async def test_client_keeps_one_entry_per_path(hub) -> None:
    hub.add_repo("o/r", {"a-Q4_K_M.gguf": b"x" * 10, "b-Q8_0.gguf": b"y" * 20})
    hub.tree_extra["o/r"] = [_tree_entry(hub, "o/r", "a-Q4_K_M.gguf")] * 3
    async with HubClient(hub.endpoint, token=None) as client:
        tree = await client.list_tree("o/r")
        assert sorted(f.path for f in tree.files) == ["a-Q4_K_M.gguf", "b-Q8_0.gguf"]
        hub.tree_extra["o/r"].append(_tree_entry(hub, "o/r", "b-Q8_0.gguf", oid="c" * 64))
        with pytest.raises(HubError, match="twice"):
            await client.list_tree("o/r")


# ---- 11.8: mistyped REFs are usage errors -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("pull", "notaref"), "not a Hub reference: 'notaref' (expected owner/repo"),
        (("pull", "ftp://x/y.gguf"), "unsupported URL scheme 'ftp' in 'ftp://x/y.gguf'"),
        (("pull", "file:///etc/m.gguf"), "unsupported URL scheme 'file'"),
        (("pull", "data:,hello"), "unsupported URL scheme 'data'"),
        (("pull", "o/r:Q4 K M"), "bad quant 'Q4 K M'"),
        (("pull", "o/r/../../x.gguf"), "refusing unsafe path"),
        (("files", "notarepo"), "not a Hub repository: 'notarepo' (expected owner/repo)"),
        (("files", "sftp://host/o/r"), "unsupported URL scheme 'sftp'"),
        (("files", "o/r:Q4_K_M"), "'files' takes a repo (owner/repo)"),
    ],
)
async def test_mistyped_refs_exit_2_naming_the_problem(hub, config_file, args, expected):
    code, out, err = await _gguf_tui(config_file, hub.endpoint, *args)
    assert code == 2, err
    [line] = err.strip().splitlines()
    assert line.startswith("gguf-tui: ") and expected in line, line
    assert hub.requests == []  # decided before asking the Hub anything


@pytest.mark.parametrize(
    "ref", ["ftp://x/y.gguf", "FTP://x/y.gguf", "hf://o/r", "s3:bucket/m.gguf", "https:o/r", ""]
)
def test_parse_ref_refuses_other_schemes_as_ref_errors(ref: str) -> None:
    with pytest.raises(RefError):
        parse_ref(ref, "http://127.0.0.1:9")


@pytest.mark.parametrize("ref", ["o/r:Q4_K_M", "hf.co/o/r", "https://huggingface.co/o/r", "o/r"])
def test_ordinary_refs_still_parse(ref: str) -> None:
    assert parse_ref(ref, "http://127.0.0.1:9").repo == "o/r"
