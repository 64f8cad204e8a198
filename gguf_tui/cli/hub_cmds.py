"""`gguf-tui search QUERY` and `gguf-tui files REPO`: the Hub catalog from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from gguf_tui.hub import HubClient, HubError, RepoFiles, SearchResult, parse_ref
from gguf_tui.hub.errors import RefError
from gguf_tui.textsafe import plain
from gguf_tui.units import format_size


EXIT_FAILED = 1
EXIT_USAGE = 2


def _fail(exc: HubError) -> int:
    """One line on stderr; a REF the user mistyped is a usage error (2), the Hub's no is 1."""
    print(f"gguf-tui: {plain(exc)}", file=sys.stderr)
    return EXIT_USAGE if isinstance(exc, RefError) else EXIT_FAILED


def _count(value: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if value >= size:
            text = f"{value / size:.1f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return str(value)


def _table(rows: list[list[str]], headers: list[str], right: set[int]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = []
    for row in [headers, *rows]:
        cells = [
            str(cell).rjust(width) if index in right else str(cell).ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# ---- search -------------------------------------------------------------------------------


async def _search(config: Any, query: str, limit: int | None) -> list[SearchResult]:
    async with HubClient.from_config(config) as client:
        return await client.search(query, limit)


def run_search(args: argparse.Namespace, config: Any) -> int:
    try:
        results = asyncio.run(_search(config, args.query, args.limit))
    except HubError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
        return 0
    if not results:
        print(f"no GGUF repos match {plain(args.query)!r}")
        return 0
    rows = [
        [
            plain(r.id),
            _count(r.downloads),
            _count(r.likes),
            (r.last_modified or "")[:10],
            "gated" if r.gated else "",
        ]
        for r in results
    ]
    print(_table(rows, ["REPO", "DOWNLOADS", "LIKES", "UPDATED", ""], right={1, 2}))
    return 0


# ---- files --------------------------------------------------------------------------------


async def _files(config: Any, repo: str, revision: str) -> RepoFiles:
    async with HubClient.from_config(config) as client:
        return await client.repo_files(repo, revision)


def _describe(files: RepoFiles) -> str:
    lines = [f"{files.repo} @ {plain(files.revision)}" + (f" ({files.commit[:12]})" if files.commit else "")]
    if files.gated:
        lines[0] += "  [gated: needs a token with access]"
    if files.quants or files.other:
        rows = []
        for group in files.quants + files.other:
            if group.complete:
                state = ""
            else:
                state = "incomplete: missing part " + ",".join(map(str, group.missing_parts))
            rows.append(
                [
                    group.quant or "?",
                    format_size(group.total_size),
                    f"{group.part_count} part{'s' if group.part_count > 1 else ''}"
                    if group.part_count > 1
                    else "1 file",
                    group.name,
                    state,
                ]
            )
        lines.append(_table(rows, ["QUANT", "SIZE", "FILES", "NAME", ""], right={1}))
    else:
        lines.append("no GGUF model files")
    if files.mmprojs:
        projectors = ", ".join(f"{f.name} ({format_size(f.size)})" for f in files.mmprojs)
        lines.append(f"mmproj: {projectors}")
    else:
        lines.append("mmproj: none")
    if files.skipped:
        lines.append(f"skipped {len(files.skipped)} unsafe path(s): " + ", ".join(
            f"{s.path!r} ({s.reason})" for s in files.skipped[:5]
        ))  # fmt: skip
    return "\n".join(plain_lines(lines))


def plain_lines(lines: list[str]) -> list[str]:
    """Every line of output stripped of escapes (names come from the Hub)."""
    return [plain(line) for text in lines for line in text.split("\n")]


def run_files(args: argparse.Namespace, config: Any) -> int:
    try:
        try:
            ref = parse_ref(args.repo, config.hub.endpoint)
        except RefError:
            if "/" not in args.repo.strip().strip("/"):
                raise RefError(
                    f"not a Hub repository: {plain(args.repo)!r} (expected owner/repo)"
                ) from None
            raise
        if ref.is_file or ref.quant:
            raise RefError(f"'files' takes a repo (owner/repo), not {plain(args.repo)!r}")
        files = asyncio.run(_files(config, ref.repo, args.revision or ref.revision))
    except HubError as exc:
        return _fail(exc)
    wants_fit = bool(getattr(args, "fit", False) or getattr(args, "ctx", None))  # --ctx implies it
    if wants_fit:
        from gguf_tui.cli.fit_cmds import run_files_fit

        code = run_files_fit(args, config, files, _describe(files))
    elif args.json:
        print(json.dumps(files.to_json(), indent=2))
    else:
        print(_describe(files))
    if files.truncated_at is not None:
        print(
            f"gguf-tui: note: the file list of {files.repo} was truncated at "
            f"{files.truncated_at} entries; files after that are not shown",
            file=sys.stderr,
        )
    return code if wants_fit else 0
