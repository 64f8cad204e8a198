"""`gguf-tui gpus`, and the `--fit` parts of `files` and `info`: will a model fit this box."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from gguf_tui.fit.devices import DeviceSpecError, Inventory, detect
from gguf_tui.fit.estimate import ModelFiles, estimate
from gguf_tui.fit.report import breakdown
from gguf_tui.fit.verdict import Verdict, judge
from gguf_tui.gguf.info import GGUFInfo
from gguf_tui.textsafe import plain
from gguf_tui.units import format_size

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class FitUsageError(Exception):
    """A stated device list that cannot be read: exit 2."""


def probe(config: Any) -> Inventory:
    """The devices, notices printed once on stderr; FitUsageError for a bad stated list."""
    try:
        inventory = detect(stated=config.fit.gpus)
    except DeviceSpecError as exc:
        raise FitUsageError(f"GGUF_TUI_GPUS / fit.gpus: {exc}") from None
    for notice in inventory.notices:
        print(f"gguf-tui: note: {plain(notice)}", file=sys.stderr)
    return inventory


def describe_devices(inventory: Inventory) -> list[str]:
    lines = []
    for gpu in inventory.gpus:
        lines.append(
            f"{gpu.label:<5} {plain(gpu.name)}  {format_size(gpu.free_bytes)} free of "
            f"{format_size(gpu.total_bytes)}  ({gpu.vendor})"
        )
    if not inventory.gpus:
        lines.append("no GPU found")
    if inventory.ram:
        ram = inventory.ram
        lines.append(f"RAM   {format_size(ram.free_bytes)} free of {format_size(ram.total_bytes)}")
    else:
        lines.append("RAM   unknown (no /proc/meminfo)")
    lines.append("source: " + (", ".join(inventory.sources) or "none"))
    return lines


def run_gpus(args: argparse.Namespace, config: Any) -> int:
    try:
        inventory = probe(config)
    except FitUsageError as exc:
        print(f"gguf-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(inventory.to_json(), indent=2))
    else:
        print("\n".join(describe_devices(inventory)))
    return EXIT_OK


def _context(args: argparse.Namespace, config: Any) -> int | None:
    return getattr(args, "ctx", None) or config.fit.context


def _ctx_text(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n // 1024}k" if n % 1024 == 0 and n >= 1024 else str(n)


def _needs(verdict: Verdict) -> str:
    result = verdict.estimate
    if result.error:
        return "-"
    if result.total_bytes is None:
        return f"{format_size(result.weight_bytes)}+KV?"
    return format_size(result.total_bytes)


# ---- files REPO --fit ---------------------------------------------------------------------


def run_files_fit(args: argparse.Namespace, config: Any, files: Any, table: str) -> int:
    """`files --fit`: the file table with a verdict per quant (headers read remotely)."""
    from gguf_tui.hub import HubClient, HubError
    from gguf_tui.hub.quants import pick_mmproj

    try:
        inventory = probe(config)
    except FitUsageError as exc:
        print(f"gguf-tui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    groups = files.quants + files.other
    mmproj = pick_mmproj(files.mmprojs, config.hub.prefer_mmproj)
    n_ctx = _context(args, config)

    async def verdicts() -> list[Verdict | Exception]:
        from gguf_tui.fit.remote import HeaderCache, repo_verdicts

        async with HubClient.from_config(config) as client:
            return await repo_verdicts(
                client, HeaderCache(), files.repo, files.commit or files.revision, groups,
                mmproj, inventory, n_ctx, config.fit.cache_type,
            )  # fmt: skip

    try:
        results = asyncio.run(verdicts())
    except HubError as exc:
        print(f"gguf-tui: {plain(exc)}", file=sys.stderr)
        return EXIT_FAILED
    failed = 0
    for group, result in zip(groups, results):
        if isinstance(result, Exception):
            failed += 1
            print(f"gguf-tui: cannot read the header of {plain(group.name)}: {plain(result)}",
                  file=sys.stderr)  # fmt: skip
    if args.json:
        out = files.to_json()
        by_name = dict(zip((g.name for g in groups), results))
        for key in ("quants", "other"):
            for entry in out[key]:
                result = by_name.get(entry["name"])
                entry["fit"] = (
                    {"error": plain(result)} if isinstance(result, Exception) or result is None
                    else result.to_json()
                )  # fmt: skip
        out["devices"] = inventory.to_json()
        print(json.dumps(out, indent=2))
    else:
        print(table)
        print()
        print(_fit_table(groups, results, mmproj is not None))
        print("\n".join(plain(line) for line in describe_devices(inventory)))
    return EXIT_FAILED if failed and failed == len(groups) else EXIT_OK


def _fit_table(groups: list[Any], results: list[Verdict | Exception], with_mmproj: bool) -> str:
    rows = []
    n_ctx = None
    cache = None
    for group, result in zip(groups, results):
        if isinstance(result, Exception):
            rows.append([group.quant or "?", "? n/a", "-", "-", "header not read"])
            continue
        n_ctx = n_ctx or result.estimate.n_ctx
        cache = cache or result.estimate.cache_type
        rows.append([
            group.quant or "?", result.label, _needs(result), _ctx_text(result.max_context),
            plain(result.reason),
        ])  # fmt: skip
    headers = ["QUANT", "FIT", "NEEDS", "MAX CTX", "WHY"]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    lines = [f"fit at context {n_ctx or 'default'} with {cache or 'f16'} KV cache"
             + (" (mmproj included)" if with_mmproj else "")]  # fmt: skip
    for row in [headers, *rows]:
        lines.append("  ".join(
            str(c).rjust(w) if i in (2, 3) else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip())  # fmt: skip
    return "\n".join(lines)


# ---- info MODEL --fit ---------------------------------------------------------------------


def local_model_files(entries: list[Any], infos: dict[str, GGUFInfo]) -> ModelFiles | str:
    """ModelFiles from a store model's entries and their read headers, or why not."""
    parts = [(e, infos[e.relative]) for e in entries if e.role != "mmproj" and e.relative in infos]
    mmprojs = [infos[e.relative] for e in entries if e.role == "mmproj" and e.relative in infos]
    if not parts:
        return "no readable model file"
    parts.sort(key=lambda pair: pair[1].split_index or 0)
    sizes = [e.size for e in entries if e.relative in infos]
    return ModelFiles(
        parts=tuple(info for _, info in parts), mmproj=mmprojs[0] if mmprojs else None,
        file_bytes=sum(sizes) if None not in sizes else None,
    )  # fmt: skip


def info_fit(args: argparse.Namespace, config: Any, entries: list[Any],
             infos: dict[str, GGUFInfo]) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """The fit of a store model: (JSON, text lines). Raises FitUsageError for bad devices."""
    inventory = probe(config)
    model = local_model_files(entries, infos)
    if isinstance(model, str):
        lines = [f"fit       cannot estimate: {model}"]
        return {"error": model, "devices": inventory.to_json()}, lines
    verdict = judge(estimate(model, _context(args, config), config.fit.cache_type), inventory)
    return {**verdict.to_json(), "devices": inventory.to_json()}, breakdown(verdict, inventory)
