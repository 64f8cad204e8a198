"""`gguf-tui ls | info | verify | import | path`: the model store from a shell.

`rm` and `prune` live in `gguf_tui.cli.delete_cmds`; both share the helpers here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from gguf_tui.cli import EXIT_FAILED, EXIT_OK, UsageError
from gguf_tui.config import Config
from gguf_tui.gguf import GGUFError
from gguf_tui.store.fileio import read_header
from gguf_tui.store.importer import StoreImportError, import_paths
from gguf_tui.store.layout import StoreLayout, UnsafeStoreError
from gguf_tui.store.ops import (
    NothingToVerify,
    record_use,
    verify_model,
)
from gguf_tui.store.lookup import ModelLookupError, find_model
from gguf_tui.store.scan import StoreModel, StoreSnapshot, scan_store
from gguf_tui.store.sharing import shared_files
from gguf_tui.textsafe import plain
from gguf_tui.units import format_size


# ---- shared helpers ----------------------------------------------------------------------------


def _snapshot(
    config: Config, warn: bool = True, changes: bool = False
) -> tuple[StoreLayout, StoreSnapshot]:
    """The store now. A hidden folder that is a link stops a command that `changes` the store
    (exit 1) and is a warning for one that only reads (partials behind it are not listed)."""
    layout = StoreLayout(config.store)
    try:
        layout.check_hidden()
    except UnsafeStoreError as exc:
        if changes:
            raise _Failed(str(exc)) from None
        print(f"gguf-tui: warning: {exc.folder} is a symlink or not a folder: commands that "
              "write or delete refuse this store until it is removed", file=sys.stderr)
    snapshot = scan_store(layout)
    if warn:
        for problem in snapshot.problems:
            print(f"gguf-tui: warning: {plain(problem.message)}", file=sys.stderr)
    return layout, snapshot


def _lookup(snapshot: StoreSnapshot, query: str) -> StoreModel:
    try:
        return find_model(snapshot, query)
    except ModelLookupError as exc:
        raise _Failed(plain(str(exc))) from None


class _Failed(Exception):
    """An operation failed: one line on stderr, exit 1."""


def _failing(func):
    def run(args: argparse.Namespace, config: Config) -> int:
        try:
            return func(args, config)
        except _Failed as exc:
            print(f"gguf-tui: {exc}", file=sys.stderr)
            return EXIT_FAILED

    return run


def _ago(when: float | None, now: float | None = None) -> str:
    if when is None:
        return "never"
    seconds = max(0, (time.time() if now is None else now) - when)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def _params(count: int | None) -> str:
    if not count:
        return "?"
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _confirm(args: argparse.Namespace, question: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to {question.rstrip('?')} without confirmation: "
                         "no terminal to ask on; pass --yes")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


class _Progress:
    """Hashing progress on stderr: an updating line on a TTY, else a line every few seconds."""

    def __init__(self, every: float = 2.0) -> None:
        self.tty = sys.stderr.isatty()
        self.every = every
        self.last = 0.0
        self.last_line = ""
        self.shown = False

    def __call__(self, label: str, done: int, total: int) -> None:
        percent = f"{100 * done / total:5.1f}%" if total else "100.0%"
        line = f"{plain(label)}: {percent} {format_size(done)} of {format_size(total)}"
        if self.tty:
            sys.stderr.write("\r" + line[:150] + "\x1b[K")
            sys.stderr.flush()
            self.shown = True
            return
        now = time.monotonic()
        if (now - self.last >= self.every or done == total) and line != self.last_line:
            self.last, self.last_line = now, line
            print(line, file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


# ---- ls / info / path --------------------------------------------------------------------------


def _partials_text(partials: list) -> str:
    """'2 partial downloads: 15.0 MB downloaded, 134.2 MB on disk' (preallocation shown apart)."""
    if not partials:
        return "no partial downloads"
    done = [p.downloaded_bytes for p in partials]
    downloaded = "?" if any(d is None for d in done) else format_size(sum(done))
    on_disk = format_size(sum(p.allocated_bytes for p in partials))
    return (
        f"{_count(len(partials), 'partial download')}: {downloaded} downloaded, "
        f"{on_disk} on disk"
    )


def _footer(snapshot: StoreSnapshot) -> str:
    return (
        f"{_count(len(snapshot.models), 'model')} · {format_size(snapshot.total_size)} in "
        f"{snapshot.root} · {format_size(snapshot.free_space)} free · "
        f"{_partials_text(snapshot.partials)}"
    )


@_failing
def run_ls(args: argparse.Namespace, config: Config) -> int:
    _layout, snapshot = _snapshot(config)
    if args.json:
        done = [p.downloaded_bytes for p in snapshot.partials]
        partials = {
            # partials_size is the space they hold (preallocated); downloaded is what arrived
            "partials_allocated_bytes": sum(p.allocated_bytes for p in snapshot.partials),
            "partials_downloaded_bytes": None if None in done else sum(done),
        }
        if getattr(args, "all", False):
            from gguf_tui.cli.others_cmds import others_json

            partials["other_stores"] = others_json(config)
        print(json.dumps({**snapshot.to_json(), **partials}, indent=1))
        return EXIT_OK
    if snapshot.models:
        columns = shutil.get_terminal_size((100, 24)).columns
        width = max(12, min(max(len(m.name) for m in snapshot.models), columns - 63))
        print(
            f"{'NAME':<{width}}  {'QUANT':<8} {'ARCH':<8} {'SIZE':>9} {'FILES':>5}  "
            f"{'STATE':<15} LAST USED"
        )
        for model in snapshot.models:
            state = model.state
            if state == "verified":
                age = _ago(model.verified_at).removesuffix(" ago").replace("just ", "")
                state = f"verified {age}"
            name = _cut(plain(model.name), width)
            quant = _cut(plain(model.quant or "?"), 8)
            arch = _cut(plain(model.architecture or "?"), 8)
            print(
                f"{name:<{width}}  {quant:<8} {arch:<8} {format_size(model.size):>9} "
                f"{len(model.files):>5}  {_cut(state, 15):<15} {_ago(model.last_used_at)}"
            )
        for model in snapshot.models:
            if model.owner_user:  # a shared store: another user's download, never touched
                print(f"{plain(model.name)}: {model.state} (user {plain(model.owner_user)})")
    else:
        print("no models in the store")
    print(_footer(snapshot))
    if getattr(args, "all", False):
        from gguf_tui.cli.others_cmds import print_others

        print_others(config)
    return EXIT_OK


@_failing
def run_info(args: argparse.Namespace, config: Config) -> int:
    _layout, snapshot = _snapshot(config)
    model = _lookup(snapshot, args.model)
    headers = {}
    infos = {}
    for entry in model.files:
        try:
            infos[entry.relative] = read_header(entry.path)
            headers[entry.relative] = infos[entry.relative].to_json()
        except GGUFError as exc:
            headers[entry.relative] = {"error": str(exc)}
    fit_json, fit_lines = _fit(args, config, model, infos)
    # Looking at a model is not using it: only `path` (and reading the file) counts for LRU.
    shared = shared_files(snapshot, model)
    if args.json:
        extra = {"fit": fit_json} if fit_json is not None else {}
        print(json.dumps({**model.to_json(), "headers": headers, "shared": shared, **extra}, indent=1))
        return EXIT_OK
    facts = [
        plain(model.architecture or "?"),
        f"{_params(model.parameter_count)} params",
        f"ctx {model.context_length or '?'}",
        plain(model.quant or "?"),
    ]
    print(f"name      {plain(model.name)}")
    managed = "managed" if model.managed else "unmanaged: adopt it with 'gguf-tui import'"
    print(f"state     {model.state} ({managed})")
    print(f"model     {' · '.join(facts)}")
    if model.license:
        print(f"license   {plain(model.license)}")
    if model.source:
        source = model.source
        where = source.get("repo") or source.get("url") or ", ".join(source.get("from", []))
        revision = f" @ {str(source['revision'])[:12]}" if source.get("revision") else ""
        print(f"source    {plain(source.get('kind', '?'))} {plain(where)}{revision}")
    if model.added_at:
        print(f"added     {_ago(model.added_at)}")
    print(f"last used {_ago(model.last_used_at)}")
    print(f"size      {format_size(model.size)} in {_count(len(model.files), 'file')}")
    for entry in model.files:
        header = headers[entry.relative]
        if "error" in header:
            detail = plain(header["error"])
        else:
            bits = [
                plain(header.get("architecture") or "?"),
                plain(header.get("quantization") or "?"),
            ]
            if header.get("split_count"):
                bits.append(f"part {header['split_index'] + 1} of {header['split_count']}")
            if header.get("projector_type"):
                bits.append(f"projector {plain(header['projector_type'])}")
            detail = " · ".join(bits)
        flags = "" if entry.exists else " MISSING"
        flags += " (symlink)" if entry.is_symlink else ""
        print(f"  {plain(entry.relative)}  {format_size(entry.size)}  {entry.role}{flags}")
        print(f"    {detail}")
        if entry.relative in shared:
            print(f"    also a file of {', '.join(plain(n) for n in shared[entry.relative])}")
        if entry.sha256:
            checked = "not verified yet"
            if entry.verified_at and entry.has_reference:
                checked = (
                    f"verified {_ago(entry.verified_at)} against the {entry.sha256_source} hash"
                )
            elif entry.verified_at:
                checked = f"recorded, matched {_ago(entry.verified_at)} (no published hash)"
            if entry.verify_failed_at:
                checked = f"MISMATCH found {_ago(entry.verify_failed_at)}"
            print(f"    sha256 {entry.sha256[:16]}… {checked}")
        if entry.origin:
            print(f"    from   {plain(entry.origin)}")
    for line in fit_lines:
        print(line)
    return EXIT_OK


def _fit(args: argparse.Namespace, config: Config, model: StoreModel, infos: dict) -> tuple:
    """`info --fit`: (JSON or None, text lines); a bad stated device list is a usage error."""
    if not (getattr(args, "fit", False) or getattr(args, "ctx", None)):  # --ctx implies --fit
        return None, []
    from gguf_tui.cli.fit_cmds import FitUsageError, info_fit

    try:
        return info_fit(args, config, model.files, infos)
    except FitUsageError as exc:
        raise UsageError(str(exc)) from None


@_failing
def run_path(args: argparse.Namespace, config: Config) -> int:
    _layout, snapshot = _snapshot(config)
    model = _lookup(snapshot, args.model)
    if args.all:
        chosen = model.files
    elif args.mmproj:
        if model.mmproj is None:
            raise _Failed(f"{plain(model.name)} has no mmproj file")
        chosen = [model.mmproj]
    else:
        chosen = [model.main_file]
    missing = [entry.relative for entry in chosen if not entry.exists]
    if missing:
        raise _Failed(f"{plain(model.name)}: {plain(missing[0])} is missing from the store")
    record_use(model)
    for entry in chosen:
        print(entry.path)
    return EXIT_OK


# ---- verify ------------------------------------------------------------------------------------


@_failing
def run_verify(args: argparse.Namespace, config: Config) -> int:
    _layout, snapshot = _snapshot(config)
    if args.models:
        models = list(dict.fromkeys(_lookup(snapshot, query).name for query in args.models))
        chosen = [m for m in snapshot.models if m.name in models]
    else:
        chosen = [m for m in snapshot.models if m.managed]
        if not chosen:
            print("no managed models to verify", file=sys.stderr)
    progress = _Progress()
    results, code, unverifiable = [], EXIT_OK, False
    for model in chosen:
        try:
            result = verify_model(
                model, progress=lambda rel, done, total: progress(f"verifying {rel}", done, total)
            )
        except NothingToVerify as exc:
            progress.clear()
            print(f"gguf-tui: {plain(str(exc))}", file=sys.stderr)
            code = EXIT_FAILED
            unverifiable = True
            continue
        progress.clear()
        results.append(result)
        if not args.json:
            ok = "ok" if result.ok else "FAILED"
            print(f"{plain(model.name)}: {ok} ({_count(len(result.checks), 'file')})")
        for check in result.checks:
            if not check.ok:
                code = EXIT_FAILED
                where = f"{plain(model.name)}: {plain(check.path)}"
                print(f"gguf-tui: {where}: {check.message}", file=sys.stderr)
    repaired = None
    if getattr(args, "repair", False):
        repaired = _repair(args, config, chosen, results)
        fixed = {name for name, ok, _message in repaired if ok}
        if not unverifiable and all(r.ok or r.name in fixed for r in results):
            code = EXIT_OK  # every file that failed was downloaded again and matches
    if args.json:
        data: dict = {"results": [r.to_json() for r in results]}
        if repaired is not None:
            data["repaired"] = [
                {"name": name, "ok": ok, "message": message} for name, ok, message in repaired
            ]
        print(json.dumps(data, indent=1))
    return code


def _repair(
    args: argparse.Namespace, config: Config, chosen: list[StoreModel], results: list
) -> list[tuple[str, bool, str]]:
    """Download again, from each manifest's recorded source, the files the verify found bad."""
    from gguf_tui.cli.repair import repair_models
    from gguf_tui.engine.repair import NoRepairSource, repair_spec
    from gguf_tui.store.manifest import Manifest, ManifestError

    by_name = {model.name: model for model in chosen}
    specs, outcomes = [], []
    for result in results:
        if result.ok:
            continue
        bad = [check.path for check in result.checks if not check.ok]
        try:
            manifest = Manifest.load(by_name[result.name].manifest_path)  # type: ignore[arg-type]
            specs.append(repair_spec(manifest, bad))
        except (ManifestError, NoRepairSource) as exc:
            outcomes.append((result.name, False, plain(str(exc))))
    if specs:
        outcomes.extend(repair_models(specs, config))
    for name, ok, message in outcomes:
        if ok:
            print(f"{plain(name)}: repaired", file=sys.stderr if args.json else sys.stdout)
        else:
            print(f"gguf-tui: {plain(name)}: not repaired: {message}", file=sys.stderr)
    return outcomes


# ---- import ------------------------------------------------------------------------------------


@_failing
def run_import(args: argparse.Namespace, config: Config) -> int:
    if getattr(args, "from_tool", None):
        from gguf_tui.cli.others_cmds import run_import_from

        return run_import_from(args, config)
    if not args.paths:
        raise UsageError("import needs a PATH (or --from TOOL)")
    layout = StoreLayout(config.store)
    try:
        layout.check_hidden()  # before reading anything: a linked hidden folder stops it all
    except UnsafeStoreError as exc:
        raise _Failed(str(exc)) from None
    progress = _Progress()
    try:
        outcomes = import_paths(
            layout, [Path(p) for p in args.paths], mode=args.mode, name=args.name, progress=progress
        )
    except StoreImportError as exc:
        progress.clear()
        raise _Failed(plain(str(exc))) from None
    except OSError as exc:
        progress.clear()
        where = f": {exc.filename}" if exc.filename else ""
        raise _Failed(f"import failed: {exc.strerror or exc}{where}") from None
    progress.clear()
    if args.json:
        print(json.dumps({"imported": [o.to_json() for o in outcomes]}, indent=1))
        return EXIT_OK
    for outcome in outcomes:
        for note in outcome.notes:
            print(f"  {plain(note)}", file=sys.stderr)
        if outcome.action == "duplicate":
            print(f"{plain(outcome.name)}: already in the store, nothing stored twice")
        else:
            print(f"{plain(outcome.name)}: {outcome.action} ({_count(len(outcome.files), 'file')})")
    return EXIT_OK
