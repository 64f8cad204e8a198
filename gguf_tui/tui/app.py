"""The dashboard: Catalog, Queue and Detail panes over the engine, the store and the Hub.

The app talks to the engine only through `engine/api.py` (EngineAPI): commands in, a snapshot
and sequenced events out. By default that is the per-user engine service (started on demand),
so `q` detaches and downloads go on; `--local` / `engine.mode: local` runs it in this process. Workers stay thin: they await one engine, store or Hub call
and post a message (`tui/messages.py`); the handlers here own every piece of state and update
the widgets. Errors become notifications or detail-pane text, never a crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable

from rich.style import Style
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from gguf_tui.config import Config
from gguf_tui.engine.api import CommandError, EngineAPI, JobState, Progress
from gguf_tui.store.watcher import PARTIALS
from gguf_tui.textsafe import plain
from gguf_tui.tui import keys, messages as msg
from gguf_tui.tui.actions import ActionsMixin
from gguf_tui.tui.catalog import CatalogTable, SearchState
from gguf_tui.tui.detail import DetailPane
from gguf_tui.tui.engineevents import EngineEventsMixin
from gguf_tui.tui.fitactions import FitMixin
from gguf_tui.tui.fitstate import FitState
from gguf_tui.tui.lifecycle import EXIT_INTERRUPTED, EXIT_OK, SHUTDOWN_TIMEOUT, SignalsMixin, while_running
from gguf_tui.tui.panelayout import PaneArea
from gguf_tui.tui.othersmixin import OtherStoresMixin
from gguf_tui.tui.panes import PanesMixin
from gguf_tui.tui.queue import QueueTable
from gguf_tui.tui.render import clean
from gguf_tui.tui.screens.prune import PruneScreen
from gguf_tui.tui.sources import SourceFilter
from gguf_tui.tui.statusbar import StatusBar
from gguf_tui.tui.storeport import StorePort
from gguf_tui.tui.theming import STATE_VARIABLE_DEFAULTS, pane_border
from gguf_tui.tui.uisetup import ui_setup
from gguf_tui.tui.uistate import remember_theme
from gguf_tui.tui.views import JobView

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "GgufApp", "run_app"]

FREE_SPACE_EVERY = 3.0


class MainScreen(Screen):
    """The dashboard's screen; tab moves between its panes in their order (`cycle_pane`)."""

    BINDINGS = keys.bindings(keys.SCREEN)


PANES = ("#catalog", "#queue", "#detail")  # tab order: also the stacked layout's, top down


class GgufApp(PanesMixin, ActionsMixin, EngineEventsMixin, OtherStoresMixin, FitMixin, SignalsMixin, App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "gguf-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = keys.bindings(keys.APP)

    def __init__(
        self,
        config: Config,
        *,
        engine: EngineAPI | None = None,
        local: bool | None = None,
        store: StorePort | None = None,
        hub: Any = None,
        clock: Callable[[], float] = time.time,
        handle_signals: bool = False,
    ) -> None:
        setup = ui_setup(config)  # ConfigError (exit 2) before anything starts
        # NO_COLOR: Textual's default filter for it turns colours into greys (still colour
        # codes); telling it the theme is ANSI makes it drop every colour instead.
        no_color = os.environ.get("NO_COLOR") is not None
        super().__init__(ansi_color=True if no_color else None)
        self.animation_level = "none"
        self.config = config
        self.ui = setup
        self.clock = clock
        self.handle_signals = handle_signals
        self.store = store or StorePort(config)
        self.hub = hub if hub is not None else _make_hub(config)
        self.engine: EngineAPI | None = engine  # opened by start_engine when not given
        if local is None:
            local = config.engine.mode == "local"
        self.engine_kind = engine_kind(engine) if engine is not None else ("local" if local else "service")
        self.engine_state = "starting"  # "starting", "attached", "gone" (the service went away)
        self.detached_jobs = 0  # downloads left running in the service when this app detached
        self.pending_refs: list[str] = []  # asked for while the engine was starting
        self.jobs: dict[int, JobView] = {}
        self.job_order: list[int] = []
        self.snapshot: Any = None
        self.search: SearchState | None = None
        self.facts: dict[str, Any] = {}
        self.fit = FitState(context=config.fit.context, cache_type=config.fit.cache_type)
        self.sources = SourceFilter()  # the catalog's source filter and the other stores' scan
        self.detail_source = "catalog"
        self.exit_code = EXIT_OK
        self._quitting = False
        self._quitting_done = False
        self._engine_ready = False
        self._scanning = False
        self._rescan_again = False
        self._listing_partials = False
        self._relist_again = False
        self._detail_painted_at = 0.0
        self._reported_problems: set[str] = set()
        self._styles: dict[str, Style] = {}
        self.startup_notes: list[str] = []
        self._previous_handlers: dict[int, Any] = {}
        self._setup_themes()
        self._setup_keymap()

    # ---- setup -------------------------------------------------------------------------------

    def _setup_themes(self) -> None:
        for theme in self.ui.themes:
            self.register_theme(theme)
        self.startup_notes += self.ui.notes
        self.theme = self.ui.theme

    def _setup_keymap(self) -> None:
        self.keymap = self.ui.keymap
        if self.keymap:
            self.set_keymap(self.keymap)

    def _theme_chosen(self, theme: Any) -> None:
        """Remember a theme picked while running (the palette); say when the config overrides it."""
        try:
            remember_theme(theme.name)
        except OSError as exc:
            self.notify(f"cannot remember the theme: {exc.strerror or exc}", severity="warning", markup=False)
            return
        if self.ui.theme_from_config and theme.name != self.ui.theme:
            self.notify(
                f"theme {plain(theme.name)} for this session: ui.theme in "
                f"{self.config.source or 'the config'} chooses {plain(self.config.ui.theme or '')} at start",
                timeout=8,
                markup=False,
            )

    def get_default_screen(self) -> Screen:
        return MainScreen(id="main")

    def action_cycle_pane(self, step: int) -> None:
        panes = [self.query_one(selector) for selector in PANES]
        focused = self.focused
        index = panes.index(focused) if focused in panes else (-1 if step > 0 else 0)
        # Synchronous (unlike Widget.focus), so a key typed right after tab goes to the new pane.
        self.screen.set_focus(panes[(index + step) % len(panes)])

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(STATE_VARIABLE_DEFAULTS)

    def get_css_variables(self) -> dict[str, str]:
        variables = super().get_css_variables()  # also self.theme_variables: the same dict
        theme = self.current_theme
        if "pane-border" not in theme.variables:
            variables["pane-border"] = pane_border(variables, theme.dark)
        return variables

    def compose(self) -> ComposeResult:
        with PaneArea(id="panes"):
            yield CatalogTable(id="catalog")
            yield QueueTable(id="queue")
            yield DetailPane(id="detail")
        yield StatusBar(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#catalog").border_title = "Catalog"
        self.query_one("#queue").border_title = "Queue"
        self.query_one("#detail").border_title = "Detail"
        self.theme_changed_signal.subscribe(self, lambda _theme: self._restyle())
        self.theme_changed_signal.subscribe(self, self._theme_chosen)
        self._restyle()
        for note in self.startup_notes:
            self.notify(note, severity="warning", timeout=10, markup=False)
        self.refresh_catalog()
        self.update_status()
        self.query_one(CatalogTable).focus()
        self.start_engine()
        self.detect_devices()
        self.rescan()
        self.watch_store()
        self.set_interval(FREE_SPACE_EVERY, self._refresh_free_space)
        self.watch_other_stores()
        if self.handle_signals:
            self._install_signal_handlers()

    async def on_unmount(self) -> None:
        await self.shutdown_engine()
        self._restore_signal_handlers()

    # ---- workers (thin: one call, one message) -----------------------------------------------

    @work(group="engine-start", exit_on_error=False)
    async def start_engine(self) -> None:
        """Attach to the service (starting it if none answers), or start an in-process engine."""
        from gguf_tui.service.attach import open_engine
        from gguf_tui.service.client import ServiceError

        opened_here = self.engine is None
        try:
            if self.engine is None:
                self.engine = await open_engine(self.config, local=self.engine_kind == "local", restore=True)
            subscription = await self.engine.subscribe()
        except (OSError, ServiceError, CommandError) as exc:
            what = "the engine service" if self.engine_kind == "service" else f"the store {self.config.store}"
            text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            self.post_message(msg.EngineFailed(f"cannot open {what}: {text}"))
            return
        snapshot = subscription.snapshot
        restored = 0
        if self.engine_kind == "local" and opened_here:  # what it restored: all paused
            restored = sum(1 for view in snapshot.jobs if view.state == JobState.PAUSED)
        self.post_message(msg.EngineReady(snapshot, self.engine_kind, restored))
        async for event in subscription:
            if isinstance(event, Progress):
                self.post_message(msg.JobProgress(event))
            else:
                self.post_message(msg.EngineEventPosted(event))
        if not self._quitting:
            self.post_message(msg.EngineGone("the engine service stopped"))

    @work(group="engine-restart", exclusive=True, exit_on_error=False)
    async def restart_engine(self) -> None:
        """Start the service again and attach (it restores the jobs it had and resumes them)."""
        old, self.engine = self.engine, None
        if old is not None:
            try:
                await asyncio.wait_for(old.close(), 5)
            except Exception:  # noqa: BLE001 - the old connection is dead anyway
                pass
        self.engine_state = "starting"
        self.update_status()
        self.start_engine()

    @work(group="resume-state", exclusive=True, exit_on_error=False)
    async def read_job_files(self, job_id: int) -> None:
        """Ask the engine for one job's resume state now; the detail pane shows it."""
        if self.engine is None:
            return
        try:
            view = await self.engine.job(job_id)
        except Exception:  # noqa: BLE001 - the job went, or the engine: the events say so
            return
        self.post_message(msg.JobFiles(view))

    def rescan(self) -> None:
        """Scan the store again (in a thread); scans asked for meanwhile coalesce into one."""
        if self._scanning:
            self._rescan_again = True
            return
        self._scanning = True
        self._scan()

    @work(thread=True, group="scan", exit_on_error=False)
    def _scan(self) -> None:
        snapshot = self.store.scan()
        self.post_message(msg.StoreScanned(snapshot))

    @work(group="watch", exit_on_error=False)
    async def watch_store(self) -> None:
        changes = self.store.watch()
        if changes is None:
            return
        async for change in changes:
            self.post_message(msg.StoreChanged(change))

    def _refresh_free_space(self) -> None:
        if self.snapshot is None:
            return
        free = self.store.free_space()
        if free != self.snapshot.free_space:
            self.snapshot = dataclasses.replace(self.snapshot, free_space=free)
            self.update_status()

    async def shutdown_engine(self) -> None:
        """Let go of the engine (idempotent): detach from the service, whose downloads go on, or
        stop an in-process engine (its downloads pause, their resume state saved)."""
        engine, self.engine = self.engine, None
        try:
            if engine is not None:
                await asyncio.wait_for(engine.close(), SHUTDOWN_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - shutting down: report, never hang or crash
            self.log.error(f"engine shutdown: {exc!r}")
        try:
            await self.hub.close()
        except Exception:  # noqa: BLE001
            pass

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """Every worker error lands here: one notification, the app keeps running."""
        if event.state != WorkerState.ERROR:
            return
        worker = event.worker
        if worker.group == "scan":
            self._scanning = False
        if worker.group == "partials":
            self._listing_partials = False
        error = worker.error
        text = clean(f"{type(error).__name__}: {error}" if error else "unknown error", 400)
        self.notify(f"{worker.group or 'task'} failed: {text}", severity="error", timeout=10, markup=False)

    # ---- store -------------------------------------------------------------------------------

    @while_running
    def on_store_scanned(self, message: msg.StoreScanned) -> None:
        self._scanning = False
        self.snapshot = message.snapshot
        for problem in message.snapshot.problems:
            if problem.message not in self._reported_problems:
                self._reported_problems.add(problem.message)
                self.notify(clean(problem.message, 300), severity="warning", timeout=10, markup=False)
        self.refresh_catalog()
        self.update_status()
        if isinstance(self.screen, PruneScreen):
            self.screen.set_snapshot(message.snapshot, self.queued_partial_keys())
        if self._rescan_again:
            self._rescan_again = False
            self.rescan()
        self.rescan_others(read_stores=False)  # the duplicates, against this scan of ours

    @while_running
    def on_store_changed(self, message: msg.StoreChanged) -> None:
        if getattr(message.changes, "kind", None) == PARTIALS:
            self.relist_partials()  # a download's bytes or state: no need to read every model
            return
        self.rescan()

    def relist_partials(self) -> None:
        """List the partial downloads again (in a thread); requests meanwhile coalesce."""
        if self._listing_partials:
            self._relist_again = True
            return
        self._listing_partials = True
        self._list_partials()

    @work(thread=True, group="partials", exit_on_error=False)
    def _list_partials(self) -> None:
        try:
            partials = self.store.partials()
        except OSError:
            partials = None  # the folder is being changed under us: the next change lists again
        self.post_message(msg.PartialsListed(partials))

    @while_running
    def on_partials_listed(self, message: msg.PartialsListed) -> None:
        self._listing_partials = False
        if self._relist_again:
            self._relist_again = False
            self.relist_partials()
        if self.snapshot is None or message.partials is None:
            return
        self.snapshot = dataclasses.replace(self.snapshot, partials=message.partials)
        if isinstance(self.screen, PruneScreen):
            self.screen.set_snapshot(self.snapshot, self.queued_partial_keys())
        if self.detail_source == "catalog":
            self.show_catalog_detail()

    @while_running
    def on_store_op_done(self, message: msg.StoreOpDone) -> None:
        self.notify(message.text, severity=message.severity, timeout=10, markup=False)  # type: ignore[arg-type]
        self._others_read_wanted |= message.others_changed
        self.rescan()

    def queued_partial_keys(self) -> set[str]:
        """Partials that belong to downloads in this queue (cancel those there, not in prune)."""
        return {
            f.key_hash
            for view in self.jobs.values()
            if not view.state.is_final
            for f in view.files
            if f.key_hash
        }

    # ---- Hub ---------------------------------------------------------------------------------

    @while_running
    def on_search_finished(self, message: msg.SearchFinished) -> None:
        if self.search is None or self.search.query != message.query:
            return
        self.search.results = message.results
        self.search.error = message.error
        if message.error:
            self.notify(f"search failed: {clean(message.error, 300)}", severity="error", timeout=10, markup=False)
        self.refresh_catalog()
        catalog = self.query_one(CatalogTable)
        first_repo = next((row.key for row in catalog.catalog_rows if row.kind == "repo"), None)
        catalog.select_key(first_repo or "h:hub")
        catalog.focus()

    @while_running
    def on_repo_loaded(self, message: msg.RepoLoaded) -> None:
        if self.search is None or message.repo not in self.search.opened:
            return
        state = self.search.opened[message.repo]
        state.files, state.error = message.files, message.error
        self.fit.forget(message.repo)
        if message.files is not None:
            self.judge_repo_files(message.files)
        if message.error:
            self.notify(clean(message.error, 300), severity="error", timeout=10, markup=False)
        self.refresh_catalog()

    @while_running
    def on_facts_loaded(self, message: msg.FactsLoaded) -> None:
        self.facts[message.key] = message.facts
        if self.detail_source == "catalog":
            self.show_catalog_detail()

    @while_running
    def on_enqueued(self, message: msg.Enqueued) -> None:
        if message.error is not None:
            self.notify(clean(message.error, 400), severity="error", timeout=12, markup=False)
            return
        status = self.status()
        if not status.fits:
            self.notify("the queue needs more space than the disk has free", severity="warning", markup=False)

    # ---- command palette ---------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Any:
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command
        for title, key_id, text, callback in self._palette_entries():
            key = self.key_shown(key_id) if key_id else ""
            yield SystemCommand(title, f"{text} ({key})" if key else text, callback)

    def key_shown(self, key_id: str) -> str:
        """The key for `key_id` as the help screen shows it (remaps included)."""
        from gguf_tui.tui.screens.help import key_display

        return key_display(self, keys.key_for(key_id, self.keymap))

    def _palette_entries(self) -> list[tuple[str, str, str, Callable[[], Any]]]:
        """Title, key id (its key is named from the key table, remaps included), help, action."""
        quit_text = (
            "Leave; downloads go on in the engine service" if self.engine_kind == "service"
            else "Pause downloads, save their state and leave"
        )  # fmt: skip
        return [
            ("Search the Hub", "search", "Find GGUF repos by name", self.action_search),
            ("Download highlighted", "download", "Queue the highlighted quantisation or file", self.action_download),
            ("Pause / resume download", "pause", "The highlighted download in the queue", self.action_toggle_pause),
            ("Cancel download", "cancel", "The highlighted download; asks first", self.action_cancel),
            ("Retry download", "retry", "A failed or cancelled download", self.action_retry),
            ("Delete local model", "delete", "The highlighted model, ours or another tool's; asks first", self.action_delete),
            ("Show quants that fit", "fit_filter", "Only the opened repo's quants that fit the GPUs; again: all", self.action_fit_filter),
            ("Cycle fit context", "ctx_cycle", "Judge the fit at 4k, 8k, 32k or the trained maximum", self.action_ctx_cycle),
            ("Verify local model", "verify", "Re-hash the highlighted local model", self.action_verify),
            ("Prune the store", "prune", "Mark models and partials to delete", self.action_prune),
            ("Rescan every store", "rescan", "Read our store and the other tools' stores again", self.action_rescan_all),
            ("Cycle the catalog's source", "source_filter", "Ours, all, then each other tool's store", self.action_source_filter),
            ("Restart the engine", "restart_engine", "Start the engine service again after it stopped", self.action_restart_engine),
            ("Help: every key", "help", "Keys and their ids for ui.keymap", self.action_help),
            ("Quit", "quit", quit_text, self.action_quit),
            ("Quit and pause downloads", "quit_pause", "Pause every download, save their state and leave", self.action_quit_pause),
        ]


def _make_hub(config: Config) -> Any:
    from gguf_tui.hub import HubClient

    return HubClient.from_config(config)


def engine_kind(engine: Any) -> str:
    """'service' for a client of the engine service, else 'local' (in this process)."""
    from gguf_tui.service.client import ServiceClient

    return "service" if isinstance(engine, ServiceClient) else "local"


def run_app(config: Config, *, local: bool | None = None) -> int:
    """Open the dashboard; the exit code (130 after SIGTERM/SIGHUP). When it leaves downloads
    running in the engine service, the last line printed says how many and how to come back."""
    app = GgufApp(config, local=local, handle_signals=True)
    app.run(mouse=config.ui.mouse)
    if app.detached_jobs:
        count = app.detached_jobs
        print(
            f"gguf-tui: {count} download{'s' if count != 1 else ''} continue{'s' if count == 1 else ''} "
            f"in the engine service: run gguf-tui to come back, gguf-tui status to check on "
            f"{'it' if count == 1 else 'them'}",
            flush=True,
        )
    return app.exit_code
