"""`gguf-tui status` and `gguf-tui pause|resume|cancel JOB...|--all`: the queue, for scripts.

`status` shows the service's live jobs when one runs (it never starts one just to look) and the
partial downloads no live job owns, read from disk. The job commands act on the service's queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from gguf_tui.cli import EXIT_FAILED, EXIT_OK, UsageError
from gguf_tui.cli.engine_link import (
    EngineUnavailable,
    open_engine_for,
    running_service,
    wants_local,
)
from gguf_tui.config import Config
from gguf_tui.engine.api import CommandError, EngineAPI, JobState, JobView, partials_on_disk
from gguf_tui.textsafe import plain
from gguf_tui.units import format_eta, format_rate, format_size

# Which jobs `--all` means, and which a named job must be in, per command.
_ACTIONABLE = {
    "pause": frozenset({JobState.QUEUED, JobState.DOWNLOADING, JobState.RETRYING,
                        JobState.VERIFYING, JobState.ELSEWHERE}),  # fmt: skip
    "resume": frozenset({JobState.PAUSED}),
    "cancel": frozenset({JobState.QUEUED, JobState.DOWNLOADING, JobState.RETRYING,
                         JobState.VERIFYING, JobState.ELSEWHERE, JobState.PAUSED}),  # fmt: skip
}
# A named job already in the state the command asks for counts as done (scripts may repeat).
_ALREADY = {
    "pause": frozenset({JobState.PAUSED}),
    "resume": frozenset({JobState.QUEUED, JobState.DOWNLOADING, JobState.RETRYING,
                         JobState.VERIFYING, JobState.ELSEWHERE}),  # fmt: skip
    "cancel": frozenset({JobState.CANCELLED}),
}
_DONE = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


# ---- status ------------------------------------------------------------------------------------


def run_status(args: argparse.Namespace, config: Config) -> int:
    return asyncio.run(_status(args, config))


async def _status(args: argparse.Namespace, config: Config) -> int:
    jobs: list[JobView] | None = None
    service_note = None
    if not wants_local(args, config):
        try:
            service = await running_service(config)
        except EngineUnavailable as exc:
            service, service_note = None, str(exc)
        if service is not None:
            try:
                jobs = list((await service.snapshot()).jobs)
            finally:
                await service.close()
    partials = partials_on_disk(config.store)
    if jobs is not None:
        # A finished (failed, cancelled) job no longer owns its partial: `pull` starts anew.
        owned = {item.dest for view in jobs if not view.state.is_final for item in view.files}
        partials = [row for row in partials if row.get("dest") not in owned]
    if service_note:
        print(f"gguf-tui: {service_note}; showing the partial downloads on disk",
              file=sys.stderr)  # fmt: skip
    if args.json:
        data = {
            "store": str(config.store),
            "service": jobs is not None,
            "jobs": [view.to_json() for view in jobs or ()],
            "partials": partials,
        }
        print(json.dumps(data, indent=1))
    else:
        _print_status(jobs, partials)
    return EXIT_FAILED if service_note else EXIT_OK


def _print_status(jobs: list[JobView] | None, partials: list[dict]) -> None:
    if jobs is not None:
        if jobs:
            print("downloads in the engine service:")
        for view in jobs:
            print(_job_line(view))
    if jobs is None and not partials:
        print("no partial downloads")
        return
    if jobs is not None and not jobs and not partials:
        print("no downloads in the engine service, no partial downloads")
        return
    if partials and jobs:
        print("partial downloads no job owns:")
    for row in partials:
        print(_partial_line(row))


def _job_line(view: JobView) -> str:
    total = format_size(view.total) if view.total else "?"
    percent = f" {100 * view.bytes_done / view.total:.1f}%" if view.total else ""
    line = (
        f"{view.id:>4}  {plain(view.name)}: {plain(view.state_label)}, "
        f"{format_size(view.bytes_done)} of {total}{percent}"
    )
    if view.state.is_active:
        line += f", {format_rate(view.speed)}, ETA {format_eta(view.eta)}"
    if view.message and view.state not in (JobState.DOWNLOADING, JobState.QUEUED):
        line += f" ({plain(view.message)})"
    for item in view.files:
        if item.resume is not None:
            age = int(time.time() - item.resume.saved_at) if item.resume.saved_at else None
            line += (
                f"\n      {plain(item.dest)}: resume state {format_size(item.resume.bytes_done)}, "
                f"{len(item.resume.ranges)} range(s), validator "
                f"{plain(item.resume.validator or 'none')}, saved {age} s ago"
            )
    return line


def _partial_line(row: dict) -> str:
    if "error" in row:
        return f"{row['key']}: {row['error']}"
    total = format_size(row["total"]) if row["total"] else "?"
    percent = f" {100 * row['bytes_done'] / row['total']:.1f}%" if row["total"] else ""
    where = ""
    if row["owner"]:
        who = f"(user {plain(row['owner_user'])})" if row.get("owner_user") else "elsewhere"
        where = f", downloading {who} ({row['owner']})"
    age = int(time.time() - row["saved_at"]) if row["saved_at"] else None
    return (
        f"{plain(row['dest'])}: {format_size(row['bytes_done'])} of {total}{percent}, "
        f"{format_size(row['allocated_bytes'])} on disk, "
        f"{len(row['ranges'])} range(s), validator {plain(row['validator'] or 'none')}, "
        f"saved {age} s ago{where}"
    )


# ---- pause / resume / cancel -------------------------------------------------------------------


def run_job_action(args: argparse.Namespace, config: Config) -> int:
    """`pause|resume|cancel JOB...|--all`: exit 0 when every named job was acted on, 1 when a
    JOB matched nothing or the engine refused, 2 for bad arguments."""
    if bool(args.jobs) == bool(args.all):
        raise UsageError(f"{args.job_action}: name JOB ids or names, or --all (not both)")
    if wants_local(args, config):
        raise UsageError(
            f"{args.job_action} acts on the engine service's downloads; with --local or "
            "engine.mode: local no download outlives its command"
        )
    return asyncio.run(_job_action(args, config))


async def _job_action(args: argparse.Namespace, config: Config) -> int:
    action = args.job_action
    try:
        if action == "pause":
            engine = await running_service(config)  # nothing runs without a service
        else:  # a restarted service brings paused downloads back, ready to resume or cancel
            engine = await open_engine_for(config, local=False)
    except EngineUnavailable as exc:
        return _fail(args, str(exc))
    if engine is None:
        if args.all:
            _report(args, action, [], [])
            return EXIT_OK
        return _fail(
            args, f"no engine service is running for {config.store}: no download to {action}"
        )
    try:
        return await _act(args, engine, action)
    finally:
        await engine.close()


async def _act(args: argparse.Namespace, engine: EngineAPI, action: str) -> int:
    views = list((await engine.snapshot()).jobs)
    wanted = _ACTIONABLE[action]
    errors: list[str] = []
    if args.all:
        targets = [view for view in views if view.state in wanted]
    else:
        targets = []
        for token in args.jobs:
            matched = _match(token, views, wanted | _ALREADY[action], action)
            if isinstance(matched, str):
                errors.append(matched)
            else:
                targets.extend(view for view in matched if view not in targets)
    done = []
    command = {"pause": engine.pause, "resume": engine.resume, "cancel": engine.cancel}[action]
    for view in targets:
        if view.state in _ALREADY[action]:
            done.append(view)
            continue
        try:
            await command(view.id)
            done.append(view)
        except CommandError as exc:
            errors.append(f"{view.id} ({plain(view.name)}): {exc.message}")
    _report(args, action, done, errors)
    return EXIT_FAILED if errors else EXIT_OK


def _match(token: str, views: list[JobView], wanted: frozenset, action: str) -> list[JobView] | str:
    """The jobs a JOB argument names (an id, or a model name), or why it names none."""
    if token.isdigit():
        named = [view for view in views if view.id == int(token)]
    else:
        named = [view for view in views if view.name == token]
    if not named:
        return f"{plain(token)}: no such download (see 'gguf-tui status')"
    fitting = [view for view in named if view.state in wanted]
    if not fitting:
        states = ", ".join(sorted({view.state.value for view in named}))
        return f"{plain(token)}: nothing to {action} (the download is {states})"
    return fitting


def _report(args: argparse.Namespace, action: str, done: list[JobView], errors: list[str]) -> None:
    if args.json:
        print(json.dumps({
            "action": action,
            "jobs": [{"id": view.id, "name": view.name} for view in done],
            "errors": errors,
        }))  # fmt: skip
    else:
        for view in done:
            print(f"{_DONE[action]} {view.id} {plain(view.name)}")
        if not done and not errors:
            print(f"no download to {action}")
    for error in errors:
        print(f"gguf-tui: {error}", file=sys.stderr)


def _fail(args: argparse.Namespace, message: str) -> int:
    if args.json:
        print(json.dumps({"error": message}))
    print(f"gguf-tui: {message}", file=sys.stderr)
    return EXIT_FAILED
