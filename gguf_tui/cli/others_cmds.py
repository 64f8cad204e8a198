"""`ls --all`, `dedupe`, `import --from TOOL`, `link MODEL --to TOOL`: the other tools' stores."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from gguf_tui.cli import EXIT_FAILED, EXIT_OK, UsageError
from gguf_tui.cli.store_cmds import _confirm, _count, _cut, _failing, _Failed, _lookup, _Progress
from gguf_tui.cli.store_cmds import _snapshot
from gguf_tui.config import Config
from gguf_tui.store.allstores import TOOL_TITLES
from gguf_tui.store.dedupe import (
    collect_copies,
    find_duplicates,
    hash_cache_for,
    link_duplicates,
)
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.others import (
    TOOL_HF,
    TOOL_LMSTUDIO,
    OtherModel,
    configured_places,
    scan_configured,
)
from gguf_tui.textsafe import plain
from gguf_tui.units import format_size

IMPORT_TOOLS = ("hf", "lmstudio", "ollama", "llama.cpp")
LINK_TARGETS = ("lmstudio", "hf-cache", "ollama")


# ---- ls --all ----------------------------------------------------------------------------------


def others_json(config: Config) -> dict:
    """`ls --all --json`'s `other_stores` object."""
    return scan_configured(config).to_json()


def print_others(config: Config) -> None:
    """The other tools' models after our own listing, one table per tool, then what they hold."""
    others = scan_configured(config)
    if not others.roots:
        print("\nno other tool's store found")
        return
    for tool, roots in others.roots.items():
        models = others.of_tool(tool)
        print(f"\n{tool}: {', '.join(str(r) for r in roots)}")
        if models:
            width = max(12, min(max(len(m.name) for m in models), 60))
            print(f"  {'NAME':<{width}}  {'QUANT':<8} {'ARCH':<8} {'SIZE':>9} {'FILES':>5}  STATE")
            for model in models:
                print("  " + _model_row(model, width))
        for skipped in (s for s in others.skipped if s.tool == tool):
            print(f"  skipped {plain(str(skipped.path))}: {plain(skipped.reason)}")
    print(f"\nother stores: {_count(len(others.models), 'model')} · "
          f"{format_size(others.total_size)} (hard links counted once)")


def _model_row(model: OtherModel, width: int) -> str:
    quant = str(model.gguf.get("quantization") or "?")
    arch = str(model.gguf.get("architecture") or "?")
    state = f"broken: {model.problem}" if model.problem else "ok"
    return (f"{_cut(plain(model.name), width):<{width}}  {_cut(quant, 8):<8} {_cut(arch, 8):<8} "
            f"{format_size(model.size):>9} {len(model.files):>5}  {plain(state)}")


# ---- dedupe ------------------------------------------------------------------------------------


@_failing
def run_dedupe(args: argparse.Namespace, config: Config) -> int:
    layout, ours = _snapshot(config, changes=not args.dry_run)
    others = scan_configured(config)
    cache = hash_cache_for(layout)
    progress = _Progress()
    groups = find_duplicates(collect_copies(ours, others), cache, progress)
    progress.clear()
    try:
        cache.save()
    except OSError:
        pass  # only a cache: the next run hashes again
    reclaimable = sum(group.reclaimable_bytes for group in groups)
    if not groups or reclaimable == 0:
        if args.json:
            print(json.dumps({"groups": [g.to_json() for g in groups], "actions": [],
                              "freed_bytes": 0, "reclaimable_bytes": 0}, indent=1))
        else:
            print("no duplicates to link")
            for group in groups:
                _print_group(group)
        return EXIT_OK
    if not args.json:
        for group in groups:
            _print_group(group)
        print(f"linking would free {format_size(reclaimable)}")
    if not args.dry_run and not _confirm(args, "replace the extra copies with hard links?"):
        print("nothing changed", file=sys.stderr)
        return EXIT_FAILED
    report = link_duplicates(layout, groups, dry_run=args.dry_run, progress=progress)
    progress.clear()
    if args.json:
        print(json.dumps({"groups": [g.to_json() for g in groups], **report.to_json(),
                          "reclaimable_bytes": reclaimable, "dry_run": args.dry_run}, indent=1))
    else:
        for action in report.actions:
            why = f" ({plain(action.reason)})" if action.reason else ""
            print(f"  {action.result}: {plain(str(action.path))}{why}")
        verb = "would free" if args.dry_run else "freed"
        print(f"{verb} {format_size(report.freed_bytes)}")
    return EXIT_OK


def _print_group(group) -> None:
    where = " (across filesystems)" if group.across_filesystems else ""
    print(f"{group.sha256[:12]}… {format_size(group.size)}: "
          f"{_count(len(group.inodes()), 'copy')}{where}")
    for copy in group.copies:
        print(f"  [{copy.tool}] {plain(copy.model)}: {plain(str(copy.path))}")


# ---- import --from -----------------------------------------------------------------------------


def _pick(models: list[OtherModel], query: str | None, tool: str) -> list[OtherModel]:
    """The models `query` names (exactly, else by part of the name); broken ones refused."""
    usable = [m for m in models if m.problem is None and m.files]
    if query is None:
        return usable
    matches = [m for m in models if m.name == query] or [m for m in models if query in m.name]
    if not matches:
        raise _Failed(f"no {tool} model matches '{plain(query)}' ('gguf-tui ls --all' lists them)")
    bad = [m for m in matches if m.problem is not None or not m.files]
    if bad and len(bad) == len(matches):
        raise _Failed(f"{tool} model {plain(bad[0].name)} is broken: {plain(bad[0].problem or '')}")
    return [m for m in matches if m not in bad]


@_failing
def run_import_from(args: argparse.Namespace, config: Config) -> int:
    from gguf_tui.store.importer import StoreImportError, import_paths

    tool = args.from_tool
    if len(args.paths) > 1:
        raise UsageError("import --from takes at most one MODEL")
    if args.mode == "move":
        raise UsageError("import --from never moves another tool's files: use --copy or the "
                         "default hard link")
    mode = "copy" if args.mode == "copy" else "link"
    layout = StoreLayout(config.store)
    others = scan_configured(config)
    chosen = _pick(others.of_tool(tool), args.paths[0] if args.paths else None, tool)
    if not chosen:
        raise _Failed(f"no usable {tool} models found")
    progress = _Progress()
    results = []
    for model in chosen:
        paths = [entry.data_path for entry in model.files]
        if tool == "ollama":  # blobs are named by digest: name the files after the model
            names = {e.data_path: _ollama_file_name(model, e.role) for e in model.files}
        else:
            names = {e.data_path: e.path.name for e in model.files}
        try:
            outcomes = import_paths(
                layout, paths, mode=mode, name=args.name or _store_name(model.name),
                progress=progress,
                file_names=names, origin={"tool": tool, "tool_name": model.name},
            )
        except StoreImportError as exc:
            progress.clear()
            raise _Failed(plain(str(exc))) from None
        progress.clear()
        results.extend(outcomes)
    if args.json:
        print(json.dumps({"imported": [o.to_json() for o in results]}, indent=1))
        return EXIT_OK
    for outcome in results:
        for note in outcome.notes:
            print(f"  {plain(note)}", file=sys.stderr)
        print(f"{plain(outcome.name)}: {outcome.action} ({_count(len(outcome.files), 'file')})")
    return EXIT_OK


def _store_name(tool_name: str) -> str:
    """Our name for an adopted model: the tool's name without a trailing '.gguf'."""
    return tool_name[: -len(".gguf")] if tool_name.lower().endswith(".gguf") else tool_name


def _ollama_file_name(model: OtherModel, role: str) -> str:
    base = model.name.replace("/", "-").replace(":", "-")
    return f"{base}-mmproj.gguf" if role == "mmproj" else f"{base}.gguf"


# ---- rm --from ---------------------------------------------------------------------------------

@_failing
def run_rm_from(args: argparse.Namespace, config: Config) -> int:
    from gguf_tui.store.others_delete import OtherDeleteError, remove_other_model

    tool = args.from_tool
    others = scan_configured(config)
    chosen: list[OtherModel] = []
    for query in args.models:
        matches = [m for m in others.of_tool(tool) if m.name == query]
        if not matches:
            raise _Failed(f"no {tool} model named '{plain(query)}' ('gguf-tui ls --all' lists "
                          "them)")
        chosen.extend(m for m in matches if m not in chosen)
    names = ", ".join(plain(m.name) for m in chosen)
    size = format_size(sum(m.size for m in chosen))
    question = f"delete {names} ({size}) from {TOOL_TITLES[tool]}? {tool} will not find it again"
    if not _confirm(args, question):
        print("nothing deleted", file=sys.stderr)
        return EXIT_FAILED
    removed: list[str] = []
    for model in chosen:
        try:
            paths = remove_other_model(model)
        except (OtherDeleteError, OSError) as exc:
            raise _Failed(f"{plain(model.name)}: {plain(str(exc))}") from None
        removed.extend(str(p) for p in paths)
        if not args.json:
            print(f"{plain(model.name)}: deleted from {TOOL_TITLES[tool]} "
                  f"({_count(len(paths), 'file')} removed)")
    if args.json:
        print(json.dumps({"deleted": [m.name for m in chosen], "removed": removed}, indent=1))
    return EXIT_OK


# ---- prune --all -------------------------------------------------------------------------------


def _last_used(model: OtherModel) -> float:
    """When the model was last read or written: the newest access or change of its files."""
    newest = 0.0
    for entry in model.files:
        try:
            stat = os.stat(entry.data_path)
        except OSError:
            continue
        newest = max(newest, stat.st_atime, stat.st_mtime)
    return newest


def run_prune_all(args: argparse.Namespace, config: Config) -> int:
    """`prune --all --unused-for D`: our store by its policy, then each other tool's models
    not used for D, after a confirmation per tool that names it."""
    from gguf_tui.cli.delete_cmds import run_prune
    from gguf_tui.units import parse_duration

    if args.unused_for is None or args.max_size is not None:
        raise UsageError("prune --all works with --unused-for DURATION (the other tools' "
                         "models by last use); --max-size applies to our store only")
    if args.json:
        raise UsageError("prune --all has no --json output yet; 'gguf-tui ls --all --json' "
                         "lists every store")
    try:
        unused_for = parse_duration(args.unused_for)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    args.all = False
    code = run_prune(args, config)
    return max(code, _prune_others(args, config, unused_for))


def _prune_others(args: argparse.Namespace, config: Config, unused_for: float) -> int:
    from gguf_tui.store.others_delete import OtherDeleteError, remove_other_model

    cutoff = time.time() - unused_for
    others = scan_configured(config)
    by_tool: dict[str, list[OtherModel]] = {}
    for model in others.models:
        if model.problem is None and model.files and _last_used(model) < cutoff:
            by_tool.setdefault(model.tool, []).append(model)
    if not by_tool:
        print("nothing to prune in the other tools' stores")
        return EXIT_OK
    code = EXIT_OK
    verb = "would delete" if args.dry_run else "deleting"
    for tool, models in by_tool.items():
        for model in models:
            print(f"{verb} [{tool}] {plain(model.name)}: {format_size(model.size)}, "
                  f"not used for {args.unused_for}")
        if args.dry_run:
            continue
        question = (f"delete {_count(len(models), 'model')} "
                    f"({format_size(sum(m.size for m in models))}) from {TOOL_TITLES[tool]}?")
        if not _confirm(args, question):
            print(f"nothing deleted from {TOOL_TITLES[tool]}", file=sys.stderr)
            code = EXIT_FAILED
            continue
        for model in models:
            try:
                paths = remove_other_model(model)
            except (OtherDeleteError, OSError) as exc:
                print(f"gguf-tui: kept [{tool}] {plain(model.name)}: {plain(str(exc))}",
                      file=sys.stderr)
                code = EXIT_FAILED
                continue
            print(f"removed [{tool}] {plain(model.name)} ({_count(len(paths), 'file')})")
    return code


# ---- link --to ---------------------------------------------------------------------------------


@_failing
def run_link(args: argparse.Namespace, config: Config) -> int:
    from gguf_tui.store.links import (
        LinkError,
        link_to_hf_cache,
        link_to_lmstudio,
        write_ollama_modelfile,
    )

    layout, snapshot = _snapshot(config, changes=True)
    model = _lookup(snapshot, args.model)
    places = configured_places(config)
    try:
        if args.to == "lmstudio":
            outcome = link_to_lmstudio(model, _first_place(places, TOOL_LMSTUDIO))
        elif args.to == "hf-cache":
            outcome = link_to_hf_cache(model, _first_place(places, TOOL_HF))
        else:
            outcome = write_ollama_modelfile(model, layout.hidden / "modelfiles")
    except LinkError as exc:
        raise _Failed(plain(str(exc))) from None
    except OSError as exc:
        raise _Failed(f"link failed: {exc.strerror or exc}: {exc.filename or ''}") from None
    if args.json:
        print(json.dumps(outcome.to_json(), indent=1))
        return EXIT_OK
    for note in outcome.notes:
        print(f"  {plain(note)}", file=sys.stderr)
    for path in outcome.paths:
        print(path)
    if outcome.command:
        print(f"now run: {outcome.command}")
    return EXIT_OK


def _first_place(places: dict[str, list[Path]], tool: str) -> Path:
    roots = places.get(tool) or []
    if not roots:
        raise _Failed(f"no {tool} store is configured (other_stores in the config)")
    return roots[0]

