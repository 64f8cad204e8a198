"""Nothing below tui/ imports textual (DESIGN.md section 2): checked in fresh interpreters."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import gguf_tui
from tests.conftest import REPO_ROOT


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(gguf_tui.__path__, "gguf_tui."):
        if info.name.startswith("gguf_tui.tui") or info.name == "gguf_tui.__main__":
            continue
        names.append(info.name)
    return names


def test_no_textual_below_tui():
    modules = _modules()
    assert "gguf_tui.engine.queue" in modules and "gguf_tui.cli.pull" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'textual' not in sys.modules, name\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def test_store_commands_do_not_load_the_download_engine(tmp_path):
    """`ls`, `--help` and the like start fast: the argument table imports no aiohttp."""
    code = (
        "import sys\n"
        "from gguf_tui.cli import main\n"
        f"rc = main(['--store', {str(tmp_path / 'store')!r}, 'ls'])\n"
        "assert rc == 0, rc\n"
        "heavy = sorted(m for m in ('aiohttp', 'gguf_tui.engine.fetch', 'gguf_tui.hub.client')"
        " if m in sys.modules)\n"
        "print('loaded:', heavy)\n"
    )
    (tmp_path / "store").mkdir()  # `ls` of a named store that does not exist is an error
    env_config = tmp_path / "none.yaml"
    env_config.write_text("{}\n")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={"GGUF_TUI_CONFIG": str(env_config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout, result.stdout


def test_every_command_names_an_implementation_that_exists():
    import argparse
    import importlib

    from gguf_tui.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"pull", "status", "ls", "info", "verify", "rm", "prune", "import", "path",
            "search", "files"} <= set(subparsers.choices)  # fmt: skip
    for name, sub in subparsers.choices.items():
        module_name, _, function = sub.get_default("func").partition(":")
        assert callable(getattr(importlib.import_module(module_name), function)), name


def test_downloads_use_the_copy_free_response_parser():
    """gguf_tui selects aiohttp's pure-Python response parser, which passes body chunks through
    without copying them (the C parser copies each one)."""
    code = (
        "import os\n"
        "os.environ.pop('AIOHTTP_NO_EXTENSIONS', None)\n"
        "import gguf_tui.engine\n"
        "import aiohttp.client_proto as proto\n"
        "print(proto.HttpResponseParser.__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "aiohttp.http_parser"


# Client packages that see the engine only through engine/api.py (issue 12, DESIGN.md section 2).
API_ONLY_CLIENTS = ("gguf_tui/tui",)
ENGINE_API = "gguf_tui.engine.api"


def _engine_imports(path, module: str | None = None) -> list[str]:
    """Every module under gguf_tui.engine that a source file imports (absolute or relative);
    `module` is the file's dotted name (default: from its place in the repository)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                parts = (module or ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)).split(".")
                package = ".".join(parts[: -node.level])
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            # `from gguf_tui.engine import views` imports the module gguf_tui.engine.views;
            # `from gguf_tui import engine` the package itself
            if base in ("gguf_tui.engine", "gguf_tui"):
                names = [f"{base}.{a.name}" for a in node.names]
            else:
                names = [base]
        else:
            continue
        found += [name for name in names if name == "gguf_tui.engine" or name.startswith("gguf_tui.engine.")]
    return found


def test_the_dashboard_sees_the_engine_only_through_its_api():
    """tui/ imports gguf_tui.engine.api and nothing else of the engine: it behaves the same
    over the service's socket as in-process, and never reads engine internals."""
    files = [path for folder in API_ONLY_CLIENTS for path in sorted((REPO_ROOT / folder).rglob("*.py"))]
    assert any(path.name == "app.py" for path in files)
    offenders = {
        str(path.relative_to(REPO_ROOT)): bad
        for path in files
        if (bad := [name for name in _engine_imports(path) if name != ENGINE_API])
    }
    assert offenders == {}


def test_the_engine_import_check_catches_each_form(tmp_path):
    """The check above would fail on any of the ways a module can reach past the API."""
    for source, expected in (
        ("from gguf_tui.engine.queue import Engine\n", ["gguf_tui.engine.queue"]),
        ("import gguf_tui.engine.resume\n", ["gguf_tui.engine.resume"]),
        ("from gguf_tui.engine import Engine, api\n", ["gguf_tui.engine.Engine", "gguf_tui.engine.api"]),
        ("from ..engine.spec import JobState\n", ["gguf_tui.engine.spec"]),
        ("from gguf_tui.engine.api import JobView\n", ["gguf_tui.engine.api"]),
    ):
        probe = tmp_path / "probe.py"
        probe.write_text(source)
        assert _engine_imports(probe, "gguf_tui.tui.probe") == expected, source


# How a distribution in pyproject's dependencies is imported, where the names differ.
IMPORT_NAMES = {"pyyaml": "yaml", "nvidia-ml-py": "pynvml"}


def test_every_declared_dependency_is_imported():
    """A dependency nobody imports is weight and attack surface for nothing (issue 12)."""
    import ast
    import re
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower() for spec in project["dependencies"]}
    imported = set()
    for path in (REPO_ROOT / "gguf_tui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                imported.add(node.module.split(".")[0])
    unused = sorted(name for name in declared if IMPORT_NAMES.get(name, name).replace("-", "_") not in imported)
    assert unused == []


# `verify --repair` still runs an in-process download queue of its own (cli/repair.py, reached
# from store_cmds.py); every other command reaches the engine through engine/api.py only.
_CLI_ENGINE_EXCEPTIONS = frozenset({"repair.py", "store_cmds.py"})


def test_the_cli_uses_only_the_engine_interface():
    """`pull`, `status`, `pause|resume|cancel` and any new command import nothing from the
    engine but gguf_tui.engine.api, so they behave alike over the service and `--local`."""
    from pathlib import Path

    cli_dir = Path(gguf_tui.__file__).parent / "cli"
    checked = []
    for path in sorted(cli_dir.glob("*.py")):
        if path.name in _CLI_ENGINE_EXCEPTIONS:
            continue
        checked.append(path.name)
        wrong = [name for name in _engine_imports(path) if name != "gguf_tui.engine.api"]
        assert not wrong, (path.name, wrong)
    assert {"pull.py", "jobs_cmds.py", "progress.py", "engine_link.py"} <= set(checked)


def test_the_engine_import_check_sees_every_spelling(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(
        "from gguf_tui.engine import Engine\nimport gguf_tui.engine.queue\n"
        "from gguf_tui import engine\nfrom gguf_tui.engine.api import JobView\n"
    )
    assert _engine_imports(source) == [
        "gguf_tui.engine.Engine", "gguf_tui.engine.queue", "gguf_tui.engine", "gguf_tui.engine.api",
    ]  # fmt: skip
