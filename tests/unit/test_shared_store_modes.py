"""A store shared by a group (issue 15, item 3): the modes of everything gguf-tui creates in it.

These run as whichever user runs the suite, under umask 022 (the usual one, which would strip
the group's write bit); `test_shared_two_users.py` adds the second, real user.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
from pathlib import Path

import pytest

from gguf_tui.config import ConfigError, load_config
from gguf_tui.engine.api import JobState, JobView
from gguf_tui.engine.spec import FileRequest
from gguf_tui.fsutil import group_shared, make_folders, write_json_atomic
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.locks import DownloadLock, read_owner
from tests.conftest import TEST_CONFIG, start_pull
from tests.helpers.fileserver import Behaviour


@pytest.fixture(autouse=True)
def usual_umask(tmp_path):
    """Umask 022, in a test folder that is not shared itself (GGUF_TUI_TEST_SHARED=1 makes it
    so): each test makes its own shared store, or shows what happens outside one."""
    tmp_path.chmod(0o755)
    old = os.umask(0o022)
    yield
    os.umask(old)


def not_shared(root: Path) -> list[str]:
    """Every folder or file under `root` its group cannot write (folders: setgid too)."""
    wrong = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode) and (mode & 0o2070) != 0o2070:
            wrong.append(f"{path.relative_to(root)}: folder mode {mode & 0o7777:o}")
        elif stat.S_ISREG(mode) and (mode & 0o060) != 0o060:
            wrong.append(f"{path.relative_to(root)}: file mode {mode & 0o7777:o}")
    return wrong


def shared_config(tmp_path: Path, store: Path) -> Path:
    """The suite's test config with `store.shared: true` and the engine in the command."""
    downloads = "downloads:" + TEST_CONFIG.format(store=store).split("downloads:", 1)[1]
    path = tmp_path / "shared-config.yaml"
    path.write_text(f"store:\n  path: {store}\n  shared: true\n{downloads}engine:\n  mode: local\n")
    return path


def test_the_rule_gives_the_group_the_owners_bits_only_in_a_shared_folder(tmp_path):
    private = tmp_path / "private"
    make_folders(private / "a" / "b")
    write_json_atomic(private / "a" / "b" / "x.json", {"x": 1})
    write_json_atomic(private / "a" / "b" / "state.json", {"x": 1}, 0o600)
    assert not_shared(private) != []
    assert (private / "a" / "b" / "state.json").stat().st_mode & 0o777 == 0o600
    assert (private / "a" / "b" / "x.json").stat().st_mode & 0o777 == 0o644

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2775)
    make_folders(shared / "owner" / "repo")
    write_json_atomic(shared / "owner" / "repo" / "x.json", {"x": 1})
    write_json_atomic(shared / "owner" / "repo" / "state.json", {"x": 1}, 0o600)
    assert not_shared(shared) == []
    assert (shared / "owner" / "repo" / "state.json").stat().st_mode & 0o777 == 0o660  # no o+r
    assert (shared / "owner" / "repo" / "x.json").stat().st_mode & 0o777 == 0o664
    assert group_shared(shared / "owner")

    lock = DownloadLock(shared / ".gguf-tui" / "locks" / "k.lock", what="m")
    lock.acquire()
    lock.heartbeat(force=True)
    assert not_shared(shared) == []
    owner = read_owner(lock.path)
    assert owner is not None and owner.uid == os.geteuid() and owner.user
    assert not owner.other_user and owner.label == "downloading elsewhere"
    lock.release()


async def test_a_pull_interrupted_and_resumed_in_a_shared_store(server, tmp_path, gguf_bytes):
    store = tmp_path / "team"
    config_file = shared_config(tmp_path, store)
    url = server.add("/m.gguf", gguf_bytes, Behaviour(rate=1_000_000))
    key = FileRequest(url=url, dest="m.gguf").key_hash
    layout = StoreLayout(store)
    process = await start_pull(config_file, url)
    for _ in range(300):
        if layout.state_path(key).exists():
            break
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, err.decode()
    assert group_shared(store)
    # The partial, its resume state, the queue record, the folders: all the group's to resume.
    assert layout.partial_path(key).exists() and layout.state_path(key).exists()
    assert not_shared(store) == []
    assert layout.state_path(key).stat().st_mode & 0o777 == 0o660

    server.behaviours["/m.gguf"].rate = None
    process = await start_pull(config_file, url)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert (store / "m.gguf").read_bytes() == gguf_bytes
    assert (store / "m.gguf").stat().st_mode & 0o777 == 0o664  # group-readable and writable
    assert not_shared(store) == []


def test_import_copy_lands_group_writable(cli_shared, tmp_path, gguf_bytes):
    source = tmp_path / "outside" / "x.gguf"
    source.parent.mkdir()
    source.write_bytes(gguf_bytes)
    code, store = cli_shared("import", "--copy", str(source))
    assert code == 0
    assert (store / "x.gguf").exists()
    assert not_shared(store) == []


@pytest.fixture
def cli_shared(tmp_path, capsys):
    from gguf_tui.cli import main

    store = tmp_path / "imported"
    config_file = shared_config(tmp_path, store)

    def run(*args: str) -> tuple[int, Path]:
        return main(["--config", str(config_file), *args]), store

    return run


def test_store_shared_makes_an_existing_root_of_ours_shared(tmp_path, capsys):
    from gguf_tui.cli import main

    store = tmp_path / "mine"
    store.mkdir()
    (store / ".gguf-tui" / "manifests").mkdir(parents=True)  # made before it was shared
    config_file = shared_config(tmp_path, store)
    source = tmp_path / "y.gguf"
    from tests.helpers.ggufgen import make_gguf

    make_gguf(source, tensor_bytes=1 << 12)
    assert main(["--config", str(config_file), "import", "--copy", str(source)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert not_shared(store) == []


def test_store_shared_warns_when_the_root_is_not_ours(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("giving the root to another user needs root (chown)")
    from gguf_tui.cli import main

    store = tmp_path / "theirs"
    store.mkdir()
    os.chown(store, 65534, 65534)  # nobody's, mode 755: we may write as root, not share it
    config_file = shared_config(tmp_path, store)
    source = tmp_path / "z.gguf"
    from tests.helpers.ggufgen import make_gguf

    make_gguf(source, tensor_bytes=1 << 12)
    assert main(["--config", str(config_file), "import", "--copy", str(source)]) == 0
    err = capsys.readouterr().err
    assert "warning: store.shared is on but" in err and "chmod 2775" in err
    assert not group_shared(store)


def test_store_setting_forms(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("store: /srv/models\n")
    config = load_config(config_file)
    assert config.store == Path("/srv/models") and not config.store_shared
    config_file.write_text("store:\n  path: /srv/models\n  shared: true\n")
    config = load_config(config_file)
    assert config.store == Path("/srv/models") and config.store_shared
    config = load_config(config_file, store=tmp_path / "other")  # --store keeps shared
    assert config.store == tmp_path / "other" and config.store_shared
    config_file.write_text("store:\n  sharde: true\n")
    with pytest.raises(ConfigError, match="store.sharde.*did you mean 'shared'"):
        load_config(config_file)
    config_file.write_text("store:\n  shared: yes please\n")
    with pytest.raises(ConfigError, match="'store'"):
        load_config(config_file)


def test_another_users_lock_and_job_are_shown_with_the_user(tmp_path):
    lock_path = tmp_path / "k.lock"
    other = os.geteuid() + 4242
    lock_path.write_text(json.dumps({"pid": 1, "host": "h", "heartbeat": 1.0, "uid": other,
                                     "user": "alice", "state": "downloading"}))  # fmt: skip
    owner = read_owner(lock_path)
    assert owner is not None and owner.other_user and owner.user_name == "alice"
    assert owner.label == "downloading (user alice)"

    view = JobView(1, "m", JobState.ELSEWHERE, phase="downloading elsewhere", owner_user="alice")
    assert view.state_label == "downloading (user alice)"
    assert JobView.from_json(view.to_json()) == view
    mine = JobView(2, "m", JobState.ELSEWHERE, phase="paused elsewhere")
    assert mine.state_label == "paused elsewhere"
    assert JobView(3, "m", JobState.PAUSED).state_label == "paused"


def test_the_dashboard_queue_names_the_other_user():
    from gguf_tui.tui.render import state_word

    view = JobView(1, "m", JobState.ELSEWHERE, phase="downloading elsewhere", owner_user="alice")
    assert state_word(view, 30) == "downloading (user alice)"
    assert state_word(view, 13) == "user alice"  # the narrow queue keeps the name
    assert state_word(view, 8) == "elsewhere"


def test_ls_names_the_other_user_whose_download_a_model_still_is(tmp_path, capsys, gguf_bytes):
    """A two-file model with one file placed, paused in another user's live queue (its owner
    lock: a live process here, recorded with another uid): `ls` says whose download it is."""
    import socket

    from gguf_tui.cli import main
    from gguf_tui.engine.records import owner_lock_path, save_record
    from gguf_tui.engine.spec import JobSpec
    from gguf_tui.store.locks import process_start_id
    from gguf_tui.store.manifest import Manifest, ManifestFile

    store = tmp_path / "team"
    layout = StoreLayout(store)
    layout.ensure()
    name = "acme/Two-GGUF:Q4_K_M"
    files = ["acme/Two-GGUF/Two-00001-of-00002.gguf", "acme/Two-GGUF/Two-00002-of-00002.gguf"]
    spec = JobSpec(name, [FileRequest(url=f"http://127.0.0.1:9/{f}", dest=f) for f in files])
    save_record(layout, spec, 1.0)
    (store / files[0]).parent.mkdir(parents=True)
    (store / files[0]).write_bytes(gguf_bytes)
    manifest = Manifest(name=name, files=[ManifestFile(path=files[0], size=len(gguf_bytes), sha256="0" * 64)])
    manifest.save(layout.manifest_path(name))
    owner_lock_path(layout, name).write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": 1e12, "started": 1.0,
        "proc_start": process_start_id(os.getpid()), "what": name, "state": "paused",
        "keys": [request.key_hash for request in spec.files], "uid": os.geteuid() + 4242,
        "user": "alice",
    }))  # fmt: skip
    assert main(["--store", str(store), "ls"]) == 0
    assert f"{name}: download paused (user alice)" in capsys.readouterr().out
    assert main(["--store", str(store), "ls", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert listed[name]["owner_user"] == "alice"
