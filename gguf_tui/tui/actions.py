"""What the keys do: each action checks what is highlighted, asks where it must, and starts one
thin worker; the results come back as messages handled in `app.py`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work

from gguf_tui.engine.api import CommandError, ErrorKind, HubSettings, JobState, PullOptions
from gguf_tui.tui import messages as msg
from gguf_tui.tui.catalog import RepoState, SearchState
from gguf_tui.tui.detail import DetailPane
from gguf_tui.tui.queue import QueueTable
from gguf_tui.tui.render import clean, ellipsize
from gguf_tui.tui.screens.confirm import ConfirmScreen
from gguf_tui.tui.screens.help import HelpScreen
from gguf_tui.tui.screens.prune import PruneScreen
from gguf_tui.tui.screens.search import SearchScreen
from gguf_tui.units import format_size

# States whose download carries on in the service after this dashboard detaches.
GOING_ON = (JobState.QUEUED, JobState.DOWNLOADING, JobState.RETRYING, JobState.VERIFYING)

if TYPE_CHECKING:
    from gguf_tui.tui.app import GgufApp

# Errors an engine, store or Hub call may raise that mean "tell the user", not "bug".
try:
    import aiohttp

    _NETWORK_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError)
except ImportError:  # pragma: no cover
    _NETWORK_ERRORS = (asyncio.TimeoutError,)


def _user_errors() -> tuple[type[BaseException], ...]:
    from gguf_tui.gguf import GGUFError
    from gguf_tui.hub import HubError
    from gguf_tui.service.client import ServiceError
    from gguf_tui.store.ops import NothingToVerify, StoreBusyError, UnsafeDeleteError

    return (
        HubError,
        CommandError,
        ServiceError,
        GGUFError,
        StoreBusyError,
        UnsafeDeleteError,
        NothingToVerify,
        OSError,
        ValueError,
        *_NETWORK_ERRORS,
    )


class ActionsMixin:
    """Key actions of `GgufApp` (kept apart so the app module stays about state)."""

    # ---- Hub ---------------------------------------------------------------------------------

    def action_search(self: GgufApp) -> None:
        def submitted(query: str | None) -> None:
            if query is None:
                return
            if not query:
                self.search = None
                self.refresh_catalog()
                return
            self.search = SearchState(query)
            self.refresh_catalog()
            self.run_search(query)

        self.push_screen(SearchScreen(self.search.query if self.search else ""), submitted)

    @work(group="hub", exit_on_error=False)
    async def run_search(self: GgufApp, query: str) -> None:
        try:
            results = await self.hub.search(query)
        except _user_errors() as exc:
            self.post_message(msg.SearchFinished(query, None, str(exc) or type(exc).__name__))
            return
        self.post_message(msg.SearchFinished(query, results))

    @work(group="hub", exit_on_error=False)
    async def load_repo(self: GgufApp, repo: str) -> None:
        try:
            files = await self.hub.repo_files(repo)
        except _user_errors() as exc:
            self.post_message(msg.RepoLoaded(repo, None, str(exc) or type(exc).__name__))
            return
        self.post_message(msg.RepoLoaded(repo, files))

    @work(group="facts", exit_on_error=False)
    async def read_facts(self: GgufApp, key: str, repo: str, path: str, revision: str) -> None:
        try:
            info = await self.fit.cache.get(self.hub, repo, revision, path)  # shared with the fit column
        except _user_errors() as exc:
            self.post_message(msg.FactsLoaded(key, str(exc) or type(exc).__name__))
            return
        self.post_message(msg.FactsLoaded(key, info))

    def action_open(self: GgufApp) -> None:
        row = self.current_row()
        if row is None:
            return
        if row.kind == "repo" and row.repo is not None and self.search is not None:
            if row.repo in self.search.opened:
                del self.search.opened[row.repo]
            else:
                self.search.opened[row.repo] = RepoState(row.repo)
                self.load_repo(row.repo)
            self.refresh_catalog()
            return
        if row.kind in ("quant", "mmproj", "local", "other"):
            self.query_one(DetailPane).focus()
            return
        if row.key == "h:hub" or row.key == "note:local":
            self.action_search()

    def action_download(self: GgufApp) -> None:
        row = self.current_row()
        ref = None
        if row is not None and row.repo is not None:
            if row.kind == "repo":
                ref = row.repo  # the default quant: Q4_K_M or the closest complete one
            elif row.kind == "quant" and row.group is not None and row.files is not None:
                group, files = row.group, row.files
                if not group.complete:
                    self.notify("this quantisation is incomplete on the Hub: parts are missing", severity="warning", markup=False)
                    return
                if group.quant and len(files.find_quant(group.quant)) == 1:
                    ref = f"{files.repo}:{group.quant}"
                else:
                    ref = f"{files.repo}/{group.files[0].path}"
            elif row.kind == "mmproj" and row.hub_file is not None and row.files is not None:
                ref = f"{row.files.repo}/{row.hub_file.path}"
        if ref is None:
            if row is not None and row.kind == "local":
                self.notify("already in the store", markup=False)
            elif row is not None and row.kind == "other" and row.other is not None:
                tool = row.other.tool
                self.notify(f"already on this box in {tool}'s store: gguf-tui import --from {tool} "
                            "adopts it without copying", markup=False)
            else:
                self.notify("highlight a repo or a quantisation (/ searches the Hub)", markup=False)
            return
        if not self._engine_ready:
            if self.engine_state == "gone":
                self.notify(f"the engine service stopped: {self.key_shown('restart_engine')} starts it again", severity="warning", markup=False)
            else:  # attaching takes a moment (the service may be starting): queue it then
                self.pending_refs.append(ref)
                self.notify("the download engine is starting: queued once it is up", markup=False)
            return
        self.enqueue_ref(ref)

    @work(group="enqueue", exit_on_error=False)
    async def enqueue_ref(self: GgufApp, ref: str) -> None:
        """The engine resolves REF, with this dashboard's Hub endpoint and token."""
        hub = HubSettings.of_client(self.config, getattr(self.hub, "endpoint", None))
        try:
            if self.engine is None:
                raise CommandError("the engine is not running")
            job_id = await self.engine.enqueue(ref, PullOptions(), hub)
        except _user_errors() as exc:
            self.post_message(msg.Enqueued(ref, None, error=str(exc) or type(exc).__name__))
            return
        self.post_message(msg.Enqueued(ref, job_id, ref))

    # ---- queue -------------------------------------------------------------------------------

    def _current_job(self: GgufApp) -> Any:
        job_id = self.query_one(QueueTable).current_job_id
        if job_id is None or job_id not in self.jobs:
            self.notify("no download highlighted: the queue is empty", markup=False)
            return None
        return self.jobs[job_id]

    @work(group="commands", exit_on_error=False)
    async def engine_command(self: GgufApp, command: str, job_id: int, *args: Any) -> None:
        try:
            if self.engine is None:
                raise CommandError("the engine is not running")
            await getattr(self.engine, command)(job_id, *args)
        except CommandError as exc:
            if exc.kind == ErrorKind.NOT_FOUND:
                self.post_message(msg.JobRemoved(job_id))
            else:
                self.post_message(msg.StoreOpDone(f"{command} failed: {exc.message}", "error"))
            return
        except _user_errors() as exc:
            self.post_message(msg.StoreOpDone(f"{command} failed: {exc}", "error"))
            return
        if command == "remove":
            self.post_message(msg.JobRemoved(job_id))

    def action_toggle_pause(self: GgufApp) -> None:
        view = self._current_job()
        if view is None:
            return
        if view.state == JobState.PAUSED:
            self.engine_command("resume", view.id)
        elif view.state in (JobState.QUEUED, JobState.DOWNLOADING, JobState.RETRYING,
                            JobState.VERIFYING, JobState.ELSEWHERE):
            self.engine_command("pause", view.id)
        elif view.state == JobState.COMPLETED:
            self.notify("already downloaded", markup=False)
        else:
            self.notify(f"{view.state.value}: r retries it", markup=False)

    async def action_cancel(self: GgufApp) -> None:
        view = self._current_job()
        if view is None:
            return
        if view.state.is_final:
            self.engine_command("remove", view.id)  # clears a finished row from the list
            return
        try:
            if self.engine is None:
                raise CommandError("the engine is not running")
            preview = await self.engine.cancel_preview(view.id)
        except _user_errors() as exc:
            self.notify(f"cancel: {clean(str(exc), 300)}", severity="warning", markup=False)
            return
        if preview.refused:
            self.notify(clean(preview.refused, 300), severity="warning", timeout=8, markup=False)
            return
        if preview.kept_for:
            effect = (
                f"Its partial download belongs to another process ({clean(preview.kept_for, 80)}) "
                f"and is kept: only this queue stops asking for it."
            )
        elif preview.deletes_partial:
            effect = "The partial download is deleted: a later download starts from 0. (space pauses instead.)"
        else:
            effect = "Nothing has been downloaded yet: it leaves the queue."
        body = Text(f"{ellipsize(clean(view.name), 60)}\n\n{effect}")

        def answer(yes: bool | None) -> None:
            if yes:
                self.engine_command("cancel", view.id)

        self.push_screen(ConfirmScreen("Cancel this download?", body, yes_label="Cancel download"), answer)

    def action_retry(self: GgufApp) -> None:
        view = self._current_job()
        if view is None:
            return
        if view.state in (JobState.FAILED, JobState.CANCELLED, JobState.PAUSED):
            self.engine_command("retry", view.id)
        else:
            self.notify(f"{view.state.value}: nothing to retry", markup=False)

    def action_move(self: GgufApp, delta: int) -> None:
        view = self._current_job()
        if view is not None:
            self.engine_command("move", view.id, delta)

    # ---- store -------------------------------------------------------------------------------

    def _current_local(self: GgufApp) -> Any:
        row = self.current_row()
        if row is not None and row.kind == "other":
            self.notify("another tool's model: read-only here (D deletes it, asking first)", markup=False)
            return None
        if row is None or row.kind != "local" or row.model is None:
            self.notify("highlight a local model (under Local models)", markup=False)
            return None
        return row.model

    def action_delete(self: GgufApp) -> None:
        row = self.current_row()
        if row is not None and row.kind == "other" and row.other is not None:
            self.confirm_delete_other(row.other)
            return
        model = self._current_local()
        if model is None:
            return
        body = Text()
        for entry in model.files[:8]:
            body.append(f"  {ellipsize(clean(entry.relative), 58)}  {format_size(entry.size)}\n")
        if len(model.files) > 8:
            body.append(f"  … and {len(model.files) - 8} more files\n")
        body.append(f"\nThis frees {format_size(model.disk_bytes)}. Deleted files cannot be brought back.")

        def answer(yes: bool | None) -> None:
            if yes:
                self.delete_model(model)

        title = f"Delete {ellipsize(clean(model.name), 50)}?"
        self.push_screen(ConfirmScreen(title, body, yes_label="Delete"), answer)

    @work(thread=True, group="store-ops", exit_on_error=False)
    def delete_model(self: GgufApp, model: Any) -> None:
        try:
            result = self.store.delete(model, self.snapshot)
        except _user_errors() as exc:
            self.post_message(msg.StoreOpDone(str(exc), "error"))
            return
        if result.complete:
            text = f"deleted {clean(model.name, 80)}: freed {format_size(result.freed)}"
            for path, other in result.shared[:3]:
                text += f"; kept {clean(path, 60)} (also a file of {clean(other, 60)})"
            self.post_message(msg.StoreOpDone(text, "information"))
            return
        # A model is deleted whole or not at all: say that nothing went, and why.
        text = f"could not delete {clean(model.name, 80)}; nothing was deleted"
        for path, why in result.kept[:3]:
            text += f"; {clean(path, 60)}: {clean(why, 80)}"
        self.post_message(msg.StoreOpDone(text, "error"))

    def action_verify(self: GgufApp) -> None:
        model = self._current_local()
        if model is None:
            return
        if not model.managed:
            self.notify("an unmanaged model has no recorded SHA-256: adopt it with gguf-tui import", markup=False)
            return
        self.notify(f"verifying {clean(model.name, 80)} ({format_size(model.size)})…", markup=False)
        self.verify_model(model)

    @work(thread=True, group="store-ops", exit_on_error=False)
    def verify_model(self: GgufApp, model: Any) -> None:
        try:
            result = self.store.verify(model)
        except _user_errors() as exc:
            self.post_message(msg.StoreOpDone(str(exc), "error"))
            return
        if result.ok:
            self.post_message(msg.StoreOpDone(f"{clean(model.name, 80)}: every file matches its SHA-256"))
            return
        bad = next((c for c in result.checks if not c.ok), None)
        why = f"{clean(bad.path, 60)}: {clean(bad.message, 120)}" if bad else "no files"
        self.post_message(msg.StoreOpDone(f"{clean(model.name, 80)} failed verification: {why}", "error"))

    def action_prune(self: GgufApp) -> None:
        if self.snapshot is None:
            self.notify("still reading the store: try again in a moment", markup=False)
            return
        self.push_screen(PruneScreen(self.snapshot, self.queued_partial_keys(), clock=self.clock,
                                     others=self.sources.stores))

    def on_prune_screen_delete_marked(self: GgufApp, message: PruneScreen.DeleteMarked) -> None:
        if message.models or message.partials:
            self.prune(message.models, message.partials)
        if message.others:
            self.delete_others(message.others)

    @work(thread=True, group="store-ops", exit_on_error=False)
    def prune(self: GgufApp, models: list[Any], partials: list[Any]) -> None:
        try:
            result = self.store.prune(models, partials, self.snapshot)
        except _user_errors() as exc:
            self.post_message(msg.StoreOpDone(str(exc), "error"))
            return
        text = f"pruned {len(result.deleted)} model(s)"
        if result.partials_removed:
            text += f" and {len(result.partials_removed)} partial(s)"
        text += f": freed {format_size(result.freed)}"
        for what, why in result.refused[:3]:
            text += f"; kept {clean(what, 60)} ({clean(why, 80)})"
        self.post_message(msg.StoreOpDone(text, "warning" if result.refused else "information"))

    # ---- app ---------------------------------------------------------------------------------

    def action_help(self: GgufApp) -> None:
        self.push_screen(HelpScreen(self.keymap))

    async def action_quit(self: GgufApp) -> None:
        """q: leave. The service's downloads go on (the last line printed says so); an
        in-process engine's pause, their resume state saved."""
        if self._quitting:
            return
        self._quitting = True
        if self.engine_kind == "service" and self.engine_state == "attached":
            self.detached_jobs = sum(1 for view in self.jobs.values() if view.state in GOING_ON)
        elif any(view.state.is_active for view in self.jobs.values()):
            self.notify("pausing downloads and saving their state…", markup=False)
        await self.shutdown_engine()
        self._quitting_done = True
        self.exit(self.exit_code)

    async def action_quit_pause(self: GgufApp) -> None:
        """Q: pause every download (in the service too), then leave."""
        if self._quitting:
            return
        if self.engine is not None and self.engine_state == "attached":
            self.notify("pausing downloads and saving their state…", markup=False)
            try:
                await self.engine.pause_all()
            except _user_errors() as exc:
                self.notify(f"pausing failed: {clean(str(exc), 300)}", severity="error", markup=False)
                return
        await self.action_quit()
        self.detached_jobs = 0

    def action_restart_engine(self: GgufApp) -> None:
        if self.engine_kind != "service":
            self.notify("the engine runs inside this dashboard (--local): nothing to restart", markup=False)
            return
        if self.engine_state != "gone":
            self.notify("the engine service is running", markup=False)
            return
        self.restart_engine()
