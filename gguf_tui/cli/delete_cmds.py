"""`gguf-tui rm` and `gguf-tui prune`: deleting from the store, saying exactly what went.

A model is deleted whole or not at all; whatever could not be deleted is named with the reason
and the command exits 1, so a script never takes "freed 0 B" for success.
"""

from __future__ import annotations

import argparse
import json
import sys

from gguf_tui.cli import EXIT_FAILED, EXIT_OK, UsageError
from gguf_tui.cli.store_cmds import _ago, _confirm, _count, _failing, _Failed, _lookup, _snapshot
from gguf_tui.config import Config
from gguf_tui.store.layout import StoreLayout, UnsafeStoreError
from gguf_tui.store.ops import (
    DeleteResult,
    StoreBusyError,
    delete_model,
    manifest_paths_named,
    remove_manifest,
)
from gguf_tui.store.prune import carry_out, plan_prune
from gguf_tui.store.scan import StoreModel
from gguf_tui.store.usage import active_downloads
from gguf_tui.textsafe import plain
from gguf_tui.units import format_size, parse_duration, parse_size


# ---- rm ----------------------------------------------------------------------------------------


@_failing
def run_rm(args: argparse.Namespace, config: Config) -> int:
    if getattr(args, "from_tool", None):
        from gguf_tui.cli.others_cmds import run_rm_from

        return run_rm_from(args, config)
    layout, snapshot = _snapshot(config, changes=True)
    models: list[StoreModel] = []
    stale: list[str] = []
    for query in args.models:
        gone = [m for m in snapshot.stale_manifests if m.name == query]
        if gone and not any(m.name == query for m in snapshot.models):
            stale.append(query)
            continue
        model = _lookup(snapshot, query)
        if all(model is not chosen for chosen in models):
            models.append(model)
    active = active_downloads(layout)
    for model in models:
        for entry in model.files:
            reason = active.busy_reason(entry.relative)
            if reason:
                where = f"{plain(model.name)}: {plain(entry.relative)}"
                raise _Failed(f"not deleting {where}: {reason}")
    for model in models:
        print(
            f"{plain(model.name)}: {_count(len(model.files), 'file')}, "
            f"{format_size(model.disk_bytes)}",
            file=sys.stderr,
        )
        for entry in model.files:
            link = " (symlink: only the link is removed)" if entry.is_symlink else ""
            print(f"  {plain(entry.relative)}{link}", file=sys.stderr)
    total = sum(m.disk_bytes for m in models)
    question = f"delete {_count(len(models), 'model')} ({format_size(total)})?"
    if models and not _confirm(args, question):
        print("nothing deleted", file=sys.stderr)
        return EXIT_FAILED
    results, code = [], EXIT_OK
    for name in stale:
        if not _remove_stale(layout, name):
            code = EXIT_FAILED
    for model in models:
        try:
            result = delete_model(layout, model, snapshot=snapshot)
        except (StoreBusyError, OSError) as exc:
            print(f"gguf-tui: not deleting {plain(model.name)}: {plain(str(exc))}", file=sys.stderr)
            code = EXIT_FAILED
            continue
        results.append(result)
        for path, other in result.shared:
            print(f"gguf-tui: kept {plain(path)}: also a file of {plain(other)}", file=sys.stderr)
        for path, why in result.kept:
            print(f"gguf-tui: kept {plain(path)}: {plain(why)}", file=sys.stderr)
        if result.kept:
            code = EXIT_FAILED
            if not (result.removed or result.links_removed):
                why = result.kept[0][1]
                print(f"gguf-tui: cannot delete {plain(model.name)}: {plain(why)}; nothing was "
                      "deleted", file=sys.stderr)  # fmt: skip
        if not args.json:
            print(_deleted_line(result))
    if args.json:
        print(json.dumps({"deleted": [r.to_json() for r in results]}, indent=1))
    return code


def _deleted_line(result: DeleteResult) -> str:
    """What happened to one model, truthfully: removed, or kept (nothing deleted) and why."""
    name = plain(result.name)
    if result.kept:
        done = result.removed or result.links_removed
        if not done:
            return f"kept {name}: nothing deleted (see above)"
        return (f"partly removed {name}: {len(result.removed)} file(s) deleted, "
                f"{len(result.kept)} kept (see above)")
    links = ""
    if result.links_removed:
        links = f", {len(result.links_removed)} symlink(s) removed, targets kept"
    missing = f", {len(result.missing)} already missing" if result.missing else ""
    return (f"removed {name}: {len(result.removed)} file(s), "
            f"{format_size(result.freed)} freed{links}{missing}")


def _remove_stale(layout: StoreLayout, name: str) -> bool:
    """Remove the manifests of a model whose files are all gone; say exactly what happened."""
    paths = manifest_paths_named(layout, name)
    if not paths:
        print(f"gguf-tui: no manifest of {plain(name)} found under {layout.manifests_dir}; "
              "nothing removed", file=sys.stderr)
        return False
    ok = True
    for path in paths:
        try:
            removed = remove_manifest(layout, path)
        except OSError as exc:
            print(f"gguf-tui: kept the manifest {path}: {plain(str(exc))}", file=sys.stderr)
            ok = False
            continue
        if removed:
            print(f"removed the manifest of {plain(name)} ({path.name}); its files were already "
                  "gone from the store")
        else:
            print(f"the manifest of {plain(name)} ({path.name}) was already gone")
    return ok


# ---- prune -------------------------------------------------------------------------------------


@_failing
def run_prune(args: argparse.Namespace, config: Config) -> int:
    if getattr(args, "all", False):
        from gguf_tui.cli.others_cmds import run_prune_all

        return run_prune_all(args, config)
    if args.max_size is None and args.unused_for is None and not args.partials:
        raise UsageError(
            "prune needs a policy: --max-size SIZE, --unused-for DURATION and/or --partials"
        )
    try:
        max_size = parse_size(args.max_size) if args.max_size is not None else None
        unused_for = parse_duration(args.unused_for) if args.unused_for is not None else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    layout, snapshot = _snapshot(config, changes=not args.dry_run)
    plan = plan_prune(
        snapshot, layout, max_size=max_size, unused_for=unused_for, partials=args.partials
    )
    for name, why in plan.skipped:
        print(f"gguf-tui: keeping {plain(name)}: {plain(why)}", file=sys.stderr)
    if args.json and args.dry_run:
        print(json.dumps({"dry_run": True, **plan.to_json()}, indent=1))
        return EXIT_OK
    out = sys.stderr if args.json else sys.stdout
    verb = "would delete" if args.dry_run else "deleting"
    for item in plan.models:
        model = item.model
        kind = "" if model.managed else ", unmanaged"
        print(f"{verb} {plain(model.name)}: {format_size(model.disk_bytes)}, last used "
              f"{_ago(model.last_used_at)} ({item.reason}{kind})", file=out)
    for partial in plan.partials:
        what = plain(partial.dest or partial.key)
        print(f"{verb} partial download {what}: {partial.describe_size()}, "
              f"saved {_ago(partial.updated_at)}", file=out)
    if not plan.models and not plan.partials:
        print("nothing to prune", file=out)
        if args.json:
            print(json.dumps(plan.to_json() | {"dry_run": False}, indent=1))
        return EXIT_OK
    if max_size is not None and not plan.fits:
        print(f"gguf-tui: warning: the models will still take more than {format_size(max_size)}",
              file=sys.stderr)
    if args.dry_run:
        print(f"would free {format_size(plan.freed)}", file=out)
        return EXIT_OK
    if not _confirm(args, f"delete these ({format_size(plan.freed)})?"):
        print("nothing deleted", file=sys.stderr)
        return EXIT_FAILED
    try:
        result = carry_out(layout, plan, snapshot)
    except UnsafeStoreError as exc:
        raise _Failed(str(exc)) from None
    code = EXIT_OK
    for what, why in result.refused:
        print(f"gguf-tui: kept {plain(what)}: {plain(why)}", file=sys.stderr)
        code = EXIT_FAILED
    if args.json:
        print(json.dumps({"dry_run": False, **result.to_json()}, indent=1))
    elif result.refused:
        print(f"freed {format_size(result.freed)}; {_count(len(result.refused), 'item')} could "
              "not be deleted (see above)")
    else:
        print(f"freed {format_size(result.freed)}")
    return code
