"""`gguf-tui pull` and `gguf-tui status`: headless downloads and their resume state."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from gguf_tui.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from gguf_tui.config import Config
from gguf_tui.engine import Engine, FileRequest, JobSpec, JobState
from gguf_tui.engine.events import JobError, Notice, Progress, Retrying, StateChanged
from gguf_tui.engine.resume import ResumeState, ResumeStateError
from gguf_tui.store.layout import STATE_SUFFIX, StoreLayout, safe_file_name
from gguf_tui.store.locks import active_lock_owner
from gguf_tui.textsafe import plain, redact_url
from gguf_tui.units import format_eta, format_rate, format_size, parse_size

PLAIN_PROGRESS_EVERY = 5.0


class PullRefused(Exception):
    """A REF could not be resolved (Hub error, unsafe path): exit 1 with the message."""


# ---- building job specs ------------------------------------------------------------------------


def is_plain_url(ref: str, endpoint: str) -> bool:
    """An http(s) URL that is not a Hub page or resolve URL (those go through the Hub client)."""
    if not ref.startswith(("http://", "https://")):
        return False
    from gguf_tui.hub.refs import is_hub_ref

    return not is_hub_ref(ref, endpoint)


def url_spec(url: str, *, sha256: str | None, name: str | None) -> JobSpec:
    parts = urlsplit(url)
    if not parts.hostname:
        raise UsageError(f"not a valid URL: {redact_url(url)}")
    base = PurePosixPath(unquote(parts.path)).name or "download.gguf"
    file_name = safe_file_name(name or base)
    if name and not file_name.endswith(".gguf"):
        file_name += ".gguf"
    model_name = name or file_name.removesuffix(".gguf")
    request = FileRequest(
        url=url, dest=file_name, expected_sha256=sha256, sha256_origin="user" if sha256 else None
    )
    return JobSpec(name=model_name, files=[request], source={"kind": "url", "url": redact_url(url)})


async def build_specs(args: argparse.Namespace, config: Config, engine: Engine) -> list[JobSpec]:
    specs = []
    for ref in args.refs:
        if is_plain_url(ref, config.hub.endpoint):
            specs.append(url_spec(ref, sha256=args.sha256, name=args.name))
            continue
        from gguf_tui.hub import HubError, resolve_ref

        try:
            spec = await resolve_ref(ref, config, engine.session, no_mmproj=args.no_mmproj)
        except HubError as exc:
            raise PullRefused(plain(str(exc))) from None
        if args.name:
            spec.name = args.name
        if args.sha256:
            if len(spec.files) != 1:
                raise UsageError("--sha256 applies to a single file, but REF has several")
            spec.files[0].expected_sha256 = args.sha256
            spec.files[0].sha256_origin = "user"
        specs.append(spec)
    return specs


def _check_args(args: argparse.Namespace) -> None:
    if args.sha256 is not None:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
            raise UsageError("--sha256 must be 64 hexadecimal characters")
        args.sha256 = args.sha256.lower()
    if len(args.refs) > 1 and (args.sha256 or args.name):
        raise UsageError("--sha256 and --name apply to a single REF")
    if args.connections is not None and not 1 <= args.connections <= 64:
        raise UsageError("--connections must be between 1 and 64")
    if args.max_rate is not None:
        try:
            args.max_rate = parse_size(args.max_rate)
        except ValueError as exc:
            raise UsageError(f"--max-rate: {exc}") from None


# ---- progress output ---------------------------------------------------------------------------


class ProgressPrinter:
    """Human progress on stderr (a bar on a TTY, a line every few seconds otherwise) or JSON."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.tty = sys.stderr.isatty()
        self.last_line = 0.0
        self.bar_shown = False

    def event(self, event) -> None:
        if self.json_mode:
            print(json.dumps(event.to_json()), flush=True)
            return
        if isinstance(event, Progress):
            self._progress(event)
            return
        text = None
        name = plain(event.name)
        if isinstance(event, StateChanged):
            if event.state in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED):
                return  # reported at the end
            if event.state in (JobState.QUEUED, JobState.DOWNLOADING, JobState.RETRYING, JobState.VERIFYING):
                return
            text = f"{name}: {event.state.value}"
            if event.state == JobState.ELSEWHERE and event.message:
                text = f"{name}: {plain(event.message)}"  # names the owner's word and pid
            elif event.message and not event.message.startswith(event.state.value):
                text += f": {plain(event.message)}"
            elif event.message:
                text = f"{name}: {plain(event.message)}"
        elif isinstance(event, Retrying) and not event.max_attempts:
            text = f"{name}: {plain(event.reason)}"  # unbounded: "waiting for network (…)"
        elif isinstance(event, Retrying):
            text = (
                f"{name}: retrying {event.attempt}/{event.max_attempts} in "
                f"{event.delay:.1f} s: {plain(event.reason)}"
            )
        elif isinstance(event, Notice):
            text = f"{name}: {plain(event.message)}"
        elif isinstance(event, JobError):
            return  # the final summary names the error
        if text:
            self._clear_bar()
            print(text, file=sys.stderr, flush=True)

    def _progress(self, event: Progress) -> None:
        done = format_size(event.bytes_done)
        total = format_size(event.total) if event.total else "?"
        percent = f"{100 * event.bytes_done / event.total:5.1f}%" if event.total else "   ?%"
        verb = "re-checking" if event.phase == "re-checking" else "downloading"
        if self.tty:
            width = 24
            filled = int(width * event.bytes_done / event.total) if event.total else 0
            bar = "█" * filled + "·" * (width - filled)
            line = (
                f"\r{plain(event.name)[:32]} {bar} {percent} {done}/{total} "
                f"{format_rate(event.speed)} ETA {format_eta(event.eta)} {verb if verb != 'downloading' else ''}"
            )
            sys.stderr.write(line[:160] + "\x1b[K")
            sys.stderr.flush()
            self.bar_shown = True
            return
        now = time.monotonic()
        if now - self.last_line >= PLAIN_PROGRESS_EVERY:
            self.last_line = now
            print(
                f"{plain(event.name)}: {verb} {percent.strip()} {done} of {total}, "
                f"{format_rate(event.speed)}, ETA {format_eta(event.eta)}",
                file=sys.stderr,
                flush=True,
            )

    def _clear_bar(self) -> None:
        if self.bar_shown:
            sys.stderr.write("\r\x1b[K")
            self.bar_shown = False

    def finish(self) -> None:
        self._clear_bar()


# ---- pull --------------------------------------------------------------------------------------


def _check_refs(refs: list[str], config: Config) -> None:
    """A REF that is neither an http(s) URL nor a well-formed Hub reference is a usage error."""
    from gguf_tui.hub.errors import RefError
    from gguf_tui.hub.refs import parse_ref

    for ref in refs:
        if not is_plain_url(ref, config.hub.endpoint):
            try:
                parse_ref(ref, config.hub.endpoint)
            except RefError as exc:
                raise UsageError(str(exc)) from None


def run_pull(args: argparse.Namespace, config: Config) -> int:
    _check_args(args)
    _check_refs(args.refs, config)
    return asyncio.run(_pull(args, config))


async def _pull(args: argparse.Namespace, config: Config) -> int:
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    interrupted = []

    def on_signal(signum: int) -> None:
        if not interrupted:
            interrupted.append(signum)
            main_task.cancel()  # type: ignore[union-attr]

    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            handled.append(signum)
        except (RuntimeError, ValueError):
            pass  # not the main thread (tests run the CLI in a thread)
    printer = ProgressPrinter(args.json)
    engine = Engine(config, connections=args.connections, max_rate=args.max_rate)
    stream = engine.subscribe()
    pump = None
    job_ids: list = []
    try:
        await engine.start()
        pump = asyncio.ensure_future(_pump(stream, printer))
        try:
            try:
                specs = await build_specs(args, config, engine)
            except PullRefused as exc:
                printer.finish()
                _say(args, {"event": "failed", "message": str(exc)}, str(exc))
                return EXIT_FAILED
            for spec in specs:
                job_ids.append(await engine.enqueue(spec))
            jobs = [await engine.wait(job_id) for job_id in job_ids]
        except asyncio.CancelledError:
            if not interrupted:
                raise
            await engine.close()
            await asyncio.sleep(0)
            _drain(stream, printer)
            printer.finish()
            if job_ids:
                message = "interrupted; resume state saved: run the same pull again to resume"
            else:  # still asking the Hub what to download: there is nothing to resume
                message = "interrupted before any download started"
            _say(args, {"event": "interrupted", "message": message}, message)
            return EXIT_INTERRUPTED
        await asyncio.sleep(0)
        _drain(stream, printer)
        printer.finish()
        return _summarise(args, jobs, config)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        if pump is not None:
            pump.cancel()
        stream.close()
        await engine.close()


async def _pump(stream, printer: ProgressPrinter) -> None:
    async for event in stream:
        printer.event(event)


def _drain(stream, printer: ProgressPrinter) -> None:
    while not stream.queue.empty():
        printer.event(stream.queue.get_nowait())


def _say(args: argparse.Namespace, data: dict, text: str) -> None:
    if args.json:
        print(json.dumps(data), flush=True)
    print(f"gguf-tui: {text}", file=sys.stderr, flush=True)


def _summarise(args: argparse.Namespace, jobs: list, config: Config) -> int:
    code = EXIT_OK
    for job in jobs:
        name = plain(job.name)
        paths = [str(config.store / request.dest) for request in job.spec.files]
        if job.state == JobState.COMPLETED:
            verified = _all_verified(config, job)
            if job.message == "already in the store":
                text = f"{name} is already in the store: {', '.join(paths)}"
            elif verified:
                text = f"{name}: done, SHA-256 verified: {', '.join(paths)}"
            else:
                text = (
                    f"{name}: done, SHA-256 recorded (no published hash to verify against; "
                    f"--sha256 checks one): {', '.join(paths)}"
                )
            data = {
                "event": "done",
                "name": job.name,
                "files": paths,
                "message": job.message,
                "verified": verified,
            }
            if args.json:
                print(json.dumps(data), flush=True)
            print(text, file=sys.stderr if args.json else sys.stdout, flush=True)
        else:
            code = EXIT_FAILED
            reason = plain(job.message) or job.state.value
            if job.state == JobState.PAUSED:
                reason += " (run the same pull again to resume)"
            _say(args, {"event": "failed", "name": job.name, "message": reason}, f"{name}: {job.state.value}: {reason}")
    return code


def _all_verified(config: Config, job) -> bool:
    """Whether every file of the finished job matched a published or user-given SHA-256 (the
    manifest says; a file with only a recorded hash is not "verified")."""
    from gguf_tui.engine.landing import load_manifest
    from gguf_tui.store.manifest import ManifestError

    try:
        manifest = load_manifest(StoreLayout(config.store), job.name)
    except ManifestError:
        return False
    if manifest is None:
        return False
    entries = {entry.path: entry for entry in manifest.files}
    wanted = [entries.get(request.dest) for request in job.spec.files]
    return all(entry is not None and entry.has_reference for entry in wanted)


# ---- status ------------------------------------------------------------------------------------


def partial_downloads(layout: StoreLayout) -> list[dict]:
    """Every partial download in the store with its resume state (unreadable ones flagged)."""
    rows = []
    if not layout.partials_dir.exists():
        return rows
    for state_path in sorted(layout.partials_dir.glob(f"*{STATE_SUFFIX}")):
        key_hash = state_path.name.removesuffix(STATE_SUFFIX)
        partial = layout.partial_path(key_hash)
        owner = active_lock_owner(layout.lock_path(key_hash))
        row: dict = {
            "key": key_hash,
            "partial": str(partial),
            "partial_exists": partial.exists(),
            "allocated_bytes": _allocated(partial),  # preallocated: more than bytes_done
            "owner": owner.describe() if owner else None,
        }
        try:
            state = ResumeState.load(state_path)
        except ResumeStateError as exc:
            row["error"] = str(exc)
            rows.append(row)
            continue
        row.update(
            {
                "dest": state.dest,
                "source": redact_url(state.resume_key.split("@")[0]),
                "bytes_done": state.bytes_done,
                "total": state.total_size,
                "ranges": state.ranges,
                "etag": state.etag,
                "last_modified": state.last_modified,
                "validator": state.validator,
                "expected_sha256": state.expected_sha256,
                "saved_at": state.saved_at,
            }
        )
        rows.append(row)
    return rows


def _allocated(partial) -> int:
    from gguf_tui.store.usage import allocated_bytes

    try:
        return allocated_bytes(partial.lstat())
    except OSError:
        return 0


def run_status(args: argparse.Namespace, config: Config) -> int:
    rows = partial_downloads(StoreLayout(config.store))
    if args.json:
        print(json.dumps({"store": str(config.store), "partials": rows}, indent=1))
        return EXIT_OK
    if not rows:
        print("no partial downloads")
        return EXIT_OK
    for row in rows:
        if "error" in row:
            print(f"{row['key']}: {row['error']}")
            continue
        total = format_size(row["total"]) if row["total"] else "?"
        percent = f" {100 * row['bytes_done'] / row['total']:.1f}%" if row["total"] else ""
        where = f", downloading elsewhere ({row['owner']})" if row["owner"] else ""
        age = int(time.time() - row["saved_at"]) if row["saved_at"] else None
        print(
            f"{plain(row['dest'])}: {format_size(row['bytes_done'])} of {total}{percent}, "
            f"{format_size(row['allocated_bytes'])} on disk, "
            f"{len(row['ranges'])} range(s), validator {plain(row['validator'] or 'none')}, "
            f"saved {age} s ago{where}"
        )
    return EXIT_OK
