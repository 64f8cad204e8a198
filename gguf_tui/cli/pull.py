"""`gguf-tui pull`: submit REFs to the engine and follow them with progress and exit codes.

The engine is the per-user service (started on demand; downloads outlive this command) or,
with `--local` / `engine.mode: local`, one inside this process. Ctrl-C pauses the jobs this
pull started (exit 130); SIGHUP (the terminal went away) and SIGTERM detach and leave them
downloading in the service (DESIGN section 8: a client that is told to go away detaches; a
local engine has nowhere to leave them, so there both pause and save). Only `gguf_tui.engine.api` is used from the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys

from gguf_tui.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from gguf_tui.cli.engine_link import EngineUnavailable, hub_settings, open_engine_for, wants_local
from gguf_tui.cli.progress import ProgressPrinter
from gguf_tui.config import Config
from gguf_tui.engine.api import (
    CommandError,
    EngineAPI,
    EngineEvent,
    ErrorKind,
    JobState,
    JobView,
    PullOptions,
    QueueMirror,
    StateChanged,
    StateReason,
    settled,
)
from gguf_tui.store.layout import StoreLayout
from gguf_tui.textsafe import plain
from gguf_tui.units import parse_size

RESUME_HINT = "run the same pull again to resume"


# ---- arguments ---------------------------------------------------------------------------------


def is_plain_url(ref: str, endpoint: str) -> bool:
    """An http(s) URL that is not a Hub page or resolve URL (those go through the Hub client)."""
    if not ref.startswith(("http://", "https://")):
        return False
    from gguf_tui.hub.refs import is_hub_ref

    return not is_hub_ref(ref, endpoint)


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


def _check_refs(refs: list[str], config: Config) -> None:
    """A REF that is neither an http(s) URL nor a well-formed Hub reference is a usage error."""
    from gguf_tui.hub.errors import RefError
    from gguf_tui.hub.refs import parse_ref

    for ref in refs:
        if is_plain_url(ref, config.hub.endpoint):
            continue
        try:
            parse_ref(ref, config.hub.endpoint)
        except RefError as exc:
            raise UsageError(str(exc)) from None


def _options(args: argparse.Namespace) -> PullOptions:
    return PullOptions(
        sha256=args.sha256,
        name=args.name,
        no_mmproj=args.no_mmproj,
        connections=args.connections,
        max_rate=args.max_rate,
    )


def run_pull(args: argparse.Namespace, config: Config) -> int:
    _check_args(args)
    _check_refs(args.refs, config)
    local = wants_local(args, config)
    if args.detach and local:
        raise UsageError(
            "--detach needs the engine service (a local engine stops with this command): "
            "drop --local, or set engine.mode: service"
        )
    return asyncio.run(_pull(args, config, local))


# ---- following the jobs ------------------------------------------------------------------------


class PullSession:
    """The jobs one `pull` follows, and the ones it started (those a Ctrl-C pauses)."""

    def __init__(self, engine: EngineAPI, mirror: QueueMirror, printer: ProgressPrinter) -> None:
        self.engine = engine
        self.mirror = mirror
        self.printer = printer
        self.followed: list[int] = []
        self.started: set[int] = set()  # enqueued anew or resumed by this pull
        self.reasons: dict[int, StateReason] = {}
        self._resuming: set[int] = set()  # resumed: their paused view is stale until it changes
        self.pending: asyncio.Future | None = None  # an enqueue in flight
        self._known: set[int] = set()  # the jobs there were before it

    async def submit(self, ref: str, options: PullOptions, hub) -> int:
        """Enqueue REF; a job for the same model that is already queued is followed instead,
        and one that is paused is resumed (that is how a pull resumes)."""
        known = self._known = set(self.mirror.jobs)
        # Shielded: a Ctrl-C while the engine resolves REF must not lose the job it is about to
        # queue (the service queues it whatever this client does); `settle_pending` pauses it.
        self.pending = asyncio.ensure_future(self.engine.enqueue(ref, options, hub))
        job_id = await asyncio.shield(self.pending)
        self.pending = None
        self._add(job_id, known)
        if job_id not in self.started:
            view = (await self.engine.snapshot()).get(job_id)
            if view is not None and view.state == JobState.PAUSED:
                self._resuming.add(job_id)
                await self.engine.resume(job_id)
                self.started.add(job_id)
        return job_id

    def _add(self, job_id: int, known: set[int]) -> None:
        if job_id not in self.followed:
            self.followed.append(job_id)
        if job_id not in known:
            self.started.add(job_id)

    async def settle_pending(self, timeout: float = 5.0) -> None:
        """After an interruption: wait briefly for an enqueue in flight, so its job is known
        (and paused with the others) instead of left running unseen in the service."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        done, _ = await asyncio.wait([pending], timeout=timeout)
        if not done:
            pending.cancel()
            return
        try:
            self._add(pending.result(), self._known)
        except Exception:  # noqa: BLE001 - refused, or the engine went away: nothing was queued
            pass

    def _done(self, view: JobView) -> bool:
        return view.id not in self._resuming and settled(view)

    def on_event(self, event: EngineEvent) -> None:
        if event.job_id not in self.followed:
            return  # another client's download
        if isinstance(event, StateChanged):
            self.reasons[event.job_id] = event.reason
            if event.state != JobState.PAUSED:
                self._resuming.discard(event.job_id)
        self.printer.event(event)

    async def follow(self) -> list[JobView]:
        views = await self.mirror.follow(self.followed, done=self._done, on_event=self.on_event)
        return [views[job_id] for job_id in self.followed]

    async def pause_started(self) -> None:
        """Pause the jobs this pull started (resume state saved); others' jobs go on."""
        for job_id in sorted(self.started):
            try:
                await self.engine.pause(job_id)
            except Exception:  # noqa: BLE001 - finished or removed meanwhile, or the engine is
                pass  # gone (a service stopping pauses and saves everything itself)


def _install_signals(
    loop: asyncio.AbstractEventLoop, main_task: asyncio.Task, caught: list[int]
) -> list[int]:
    """Ctrl-C, SIGTERM and SIGHUP cancel the pull's task; `caught` says which came first."""

    def on_signal(signum: int) -> None:
        if not caught:
            caught.append(signum)
            main_task.cancel()

    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            handled.append(signum)
        except (RuntimeError, ValueError):
            pass  # not the main thread (tests run the CLI in a thread)
    return handled


async def _pull(args: argparse.Namespace, config: Config, local: bool) -> int:
    loop = asyncio.get_running_loop()
    caught: list[int] = []
    handled = _install_signals(loop, asyncio.current_task(), caught)  # type: ignore[arg-type]
    printer = ProgressPrinter(args.json)
    engine: EngineAPI | None = None
    try:
        try:
            engine = await open_engine_for(
                config, local=local, connections=args.connections, max_rate=args.max_rate
            )
        except EngineUnavailable as exc:
            _say(args, {"event": "failed", "message": str(exc)}, str(exc))
            return EXIT_FAILED
        session = PullSession(engine, QueueMirror(await engine.subscribe()), printer)
        try:
            return await _submit_and_follow(args, config, session)
        except asyncio.CancelledError:
            if not caught:
                raise
            return await _interrupted(args, session, caught[0], local)
    except asyncio.CancelledError:
        if not caught:
            raise
        _say(args, {"event": "interrupted", "message": "interrupted"}, "interrupted")
        return EXIT_INTERRUPTED
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        printer.finish()
        if engine is not None:
            await engine.close()  # detaches from the service; a local engine pauses and stops


async def _submit_and_follow(args: argparse.Namespace, config: Config, session: PullSession) -> int:
    options = _options(args)
    hub = hub_settings(config)
    refused = []
    for ref in args.refs:
        try:
            await session.submit(ref, options, hub)
        except CommandError as exc:
            if exc.kind == ErrorKind.USAGE:
                raise UsageError(exc.message) from None
            refused.append(exc.message)
            session.printer.finish()
            _say(args, {"event": "failed", "ref": ref, "message": exc.message}, exc.message)
    if args.detach:
        return _print_detached(args, await session.engine.snapshot(), session.followed, refused)
    if not session.followed:
        return EXIT_FAILED
    try:
        views = await session.follow()
    except CommandError as exc:
        session.printer.finish()
        message = f"{exc.message}; {RESUME_HINT}"
        _say(args, {"event": "failed", "message": message}, message)
        return EXIT_FAILED
    session.printer.finish()
    code = _summarise(args, views, session.reasons, config)
    return EXIT_FAILED if refused else code


def _print_detached(
    args: argparse.Namespace, snapshot, job_ids: list[int], refused: list[str]
) -> int:
    """`pull --detach`: the queued jobs' ids (one per line, or JSON) and where to watch them."""
    views = [snapshot.get(job_id) for job_id in job_ids]
    rows = [{"id": view.id, "name": view.name, "state": view.state.value} for view in views if view]
    if args.json:
        print(json.dumps({"event": "queued", "jobs": rows}), flush=True)
    else:
        for row in rows:
            print(f"{row['id']}\t{plain(row['name'])}\t{row['state']}")
        if rows:
            print("queued in the engine service: 'gguf-tui status' shows them", file=sys.stderr)
    return EXIT_FAILED if refused or not rows else EXIT_OK


async def _interrupted(
    args: argparse.Namespace, session: PullSession, signum: int, local: bool
) -> int:
    """Ctrl-C: pause this pull's jobs (exit 130). SIGHUP / SIGTERM with the service: detach."""
    session.printer.finish()
    if not local:
        await session.settle_pending()
    if signum in (signal.SIGHUP, signal.SIGTERM) and not local:
        message = "detached: the downloads go on in the engine service ('gguf-tui status')"
        _say(args, {"event": "detached", "jobs": session.followed, "message": message}, message)
        return EXIT_INTERRUPTED
    if not session.followed:  # still asking the Hub what to download: nothing to resume
        message = "interrupted before any download started"
    elif not local and not session.started:
        message = "interrupted; the downloads go on for the client that started them"
    else:
        if not local:
            await session.pause_started()
        message = f"interrupted; resume state saved: {RESUME_HINT}"
    _say(args, {"event": "interrupted", "message": message}, message)
    return EXIT_INTERRUPTED


def _say(args: argparse.Namespace, data: dict, text: str) -> None:
    if args.json:
        print(json.dumps(data), flush=True)
    print(f"gguf-tui: {text}", file=sys.stderr, flush=True)


# ---- the summary -------------------------------------------------------------------------------


def _summarise(args: argparse.Namespace, views: list[JobView], reasons: dict[int, StateReason],
               config: Config) -> int:  # fmt: skip
    code = EXIT_OK
    for view in views:
        name = plain(view.name)
        paths = [str(config.store / item.dest) for item in view.files]
        if view.state == JobState.COMPLETED:
            verified = _all_verified(config, view)
            if reasons.get(view.id) == StateReason.ALREADY_IN_STORE:
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
                "id": view.id,
                "name": view.name,
                "files": paths,
                "message": view.message,
                "reason": reasons.get(view.id, StateReason.NONE).value,
                "verified": verified,
            }
            if args.json:
                print(json.dumps(data), flush=True)
            print(text, file=sys.stderr if args.json else sys.stdout, flush=True)
        else:
            code = EXIT_FAILED
            reason = plain(view.message) or view.state.value
            if view.state == JobState.PAUSED:
                reason += f" ({RESUME_HINT})"
            _say(args, {"event": "failed", "id": view.id, "name": view.name, "message": reason},
                 f"{name}: {view.state.value}: {reason}")  # fmt: skip
    return code


def _all_verified(config: Config, view: JobView) -> bool:
    """Whether every file of the finished job matched a published or user-given SHA-256 (the
    manifest says; a file with only a recorded hash is not "verified")."""
    from gguf_tui.store.manifest import Manifest, ManifestError

    path = StoreLayout(config.store).manifest_path(view.name)
    try:
        if not path.exists():
            return False
        manifest = Manifest.load(path)
    except (ManifestError, OSError):
        return False
    entries = {entry.path: entry for entry in manifest.files}
    wanted = [entries.get(item.dest) for item in view.files]
    return bool(wanted) and all(entry is not None and entry.has_reference for entry in wanted)
