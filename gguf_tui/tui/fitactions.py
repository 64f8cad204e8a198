"""The fit column's work in the dashboard: detect the devices once, judge opened repos' quants,
and the two keys (show only what fits, cycle the context).

Device detection may block (NVML, nvidia-smi), so it runs in a thread; header reads go through
the app's Hub client and one `HeaderCache`, for the opened repos' quants only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work

from gguf_tui.fit.devices import DeviceSpecError, detect
from gguf_tui.fit.remote import repo_verdicts
from gguf_tui.fit.verdict import Verdict
from gguf_tui.hub.models import RepoFiles
from gguf_tui.textsafe import plain
from gguf_tui.tui import messages as msg
from gguf_tui.tui.fitstate import context_text
from gguf_tui.tui.lifecycle import while_running

if TYPE_CHECKING:
    from gguf_tui.tui.app import GgufApp


class FitMixin:
    """Fit verdicts of `GgufApp` (handlers are found by name: a mixin is no message pump)."""

    @work(group="fit-devices", thread=True, exit_on_error=False)
    def detect_devices(self: GgufApp) -> None:
        try:
            inventory = detect(stated=self.config.fit.gpus)
        except DeviceSpecError as exc:
            self.post_message(msg.FitDevices(None, f"GGUF_TUI_GPUS / fit.gpus: {exc}"))
            return
        except Exception as exc:  # noqa: BLE001 - a broken probe is a notice, never a crash
            self.post_message(msg.FitDevices(None, f"cannot detect the GPUs: {exc}"))
            return
        self.post_message(msg.FitDevices(inventory))

    @while_running
    def on_fit_devices(self: GgufApp, message: msg.FitDevices) -> None:
        self.fit.inventory = message.inventory
        self.fit.device_error = message.error
        if message.error:
            self.notify(f"fit column off: {plain(message.error)}", severity="warning", timeout=10, markup=False)
        for notice in message.inventory.notices if message.inventory is not None else ():
            self.notify(plain(notice), severity="warning", timeout=8, markup=False)
        self.judge_opened()
        self.refresh_catalog()

    def judge_opened(self: GgufApp) -> None:
        """Start a verdict worker for each opened, listed repo not judged yet."""
        if not self.fit.ready or self.search is None:
            return
        for state in self.search.opened.values():
            if state.files is not None:
                self.judge_repo_files(state.files)

    def judge_repo_files(self: GgufApp, files: RepoFiles) -> None:
        groups = [g for g in files.quants + files.other
                  if (files.repo, g.name) not in self.fit.base and (files.repo, g.name) not in self.fit.pending]
        if not groups or not self.fit.ready:
            return
        self.fit.pending.update((files.repo, g.name) for g in groups)
        self.judge_repo(files, groups)

    @work(group="fit", exit_on_error=False)
    async def judge_repo(self: GgufApp, files: RepoFiles, groups: list) -> None:
        from gguf_tui.hub import pick_mmproj

        mmproj = pick_mmproj(files.mmprojs, self.config.hub.prefer_mmproj)
        fit = self.fit
        results = await repo_verdicts(
            self.hub, fit.cache, files.repo, files.commit or files.revision, groups, mmproj,
            fit.inventory, fit.read_context(), fit.cache_type,
        )  # fmt: skip
        pairs = [
            (g.name, r if isinstance(r, Verdict) else plain(str(r) or type(r).__name__))
            for g, r in zip(groups, results)
        ]
        self.post_message(msg.FitJudged(files.repo, pairs))

    @while_running
    def on_fit_judged(self: GgufApp, message: msg.FitJudged) -> None:
        for name, result in message.results:
            self.fit.add((message.repo, name), result)
        self.refresh_catalog()

    def action_fit_filter(self: GgufApp) -> None:
        self.fit.only_fitting = not self.fit.only_fitting
        what = "only quants that fit the GPUs" if self.fit.only_fitting else "every quant"
        self.notify(f"catalog shows {what}", timeout=3, markup=False)
        self.refresh_catalog()

    def action_ctx_cycle(self: GgufApp) -> None:
        step = self.fit.cycle_context()
        self.notify(f"fit judged at context {context_text(step)}", timeout=3, markup=False)
        self.refresh_catalog()
