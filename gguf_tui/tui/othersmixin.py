"""The other tools' stores in the dashboard: scanning them off the event loop, the source
filter key, and deleting another tool's model the way that tool would.

The scan runs in a worker thread after each scan of our store (its duplicates are found
against it), on `ctrl+r`, and every few minutes; the catalog shows our models at once and adds
the others when the scan's message arrives. A mixin of `GgufApp`: handlers are found by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work

from gguf_tui.store.allstores import TOOL_TITLES
from gguf_tui.store.others import OtherModel
from gguf_tui.tui import messages as msg
from gguf_tui.tui.gcpolicy import settle_collector
from gguf_tui.tui.lifecycle import while_running
from gguf_tui.tui.render import clean, ellipsize
from gguf_tui.tui.screens.confirm import ConfirmScreen
from gguf_tui.tui.screens.prune import PruneScreen
from gguf_tui.tui.sources import DEFAULT_SOURCE, others_summary, source_label

if TYPE_CHECKING:
    from gguf_tui.tui.app import GgufApp

# Seconds between rescans of the other stores: other tools add models without telling us, and
# a warm scan (headers cached per file) is cheap; ctrl+r reads them at once.
OTHER_STORES_EVERY = 120.0


class OtherStoresMixin:
    """Other tools' stores for `GgufApp`."""

    _scanning_others = False
    _rescan_others_again = False
    _others_read_wanted = False  # a rescan asked to read the other stores again, not only ours

    def watch_other_stores(self: GgufApp) -> None:
        self.sources.key_hint = self.key_shown("source_filter")
        self.set_interval(OTHER_STORES_EVERY, self.rescan_others)

    def rescan_others(self: GgufApp, read_stores: bool = True) -> None:
        """Scan the other stores (in a thread) against our latest scan; asks meanwhile coalesce.

        After a change in our store only the duplicates are found again (`read_stores` False):
        the other stores are read on ctrl+r, every OTHER_STORES_EVERY seconds and at start."""
        self._others_read_wanted |= read_stores
        if self.snapshot is None:
            return  # our scan comes first; its message asks again
        if self._scanning_others:
            self._rescan_others_again = True
            return
        self._scanning_others = True
        earlier = None
        if not self._others_read_wanted and self.sources.stores is not None:
            earlier = self.sources.stores.others
        self._others_read_wanted = False
        self._scan_others(self.snapshot, earlier, self.sources.row_cache)

    @work(thread=True, group="others", exit_on_error=False)
    def _scan_others(self: GgufApp, ours: Any, earlier: Any, shown_rows: Any) -> None:
        from gguf_tui.tui.catalog import other_rows_for

        try:
            stores = self.store.scan_others(ours, earlier)
            # The rows too: thousands of them would hold the event loop for a tenth of a second
            # (and the rows shown are kept when nothing they show changed).
            rows = other_rows_for(stores, self.sources.current, shown_rows, self.sources.key_hint)
        except Exception as exc:  # noqa: BLE001 - a tool's odd store must not stop the dashboard
            self.post_message(msg.OthersScanned(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(msg.OthersScanned(stores, rows=rows))

    @while_running
    def on_others_scanned(self: GgufApp, message: msg.OthersScanned) -> None:
        self._scanning_others = False
        if message.stores is None:
            if self.sources.error != message.error:
                self.notify(f"reading the other tools' stores failed: {clean(message.error, 300)}",
                            severity="warning", timeout=10, markup=False)
            self.sources.error = message.error
        else:
            self.sources.stores, self.sources.error = message.stores, None
            self.sources.row_cache = message.rows  # used only if the filter is still the same
        if self.sources.current not in self.sources.choices():
            self.sources.current = DEFAULT_SOURCE  # that tool's models are gone
        self.refresh_catalog()
        self.update_status()
        self.refresh_bindings()  # the source key appears once other tools' models are found
        if isinstance(self.screen, PruneScreen):
            self.screen.set_others(self.sources.stores)
        if message.stores is not None:
            settle_collector()  # the new scan is long-lived: later full passes skip it
        if self._rescan_others_again:
            self._rescan_others_again = False
            self.rescan_others(read_stores=False)  # a wish to read them again is remembered

    def check_action(self: GgufApp, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The source key is offered (footer, key) once other tools' models are found: a box
        with only our store keeps the short footer it had."""
        if action == "source_filter":
            return self.sources.found
        return True

    def action_source_filter(self: GgufApp) -> None:
        """s: which stores the catalog lists: ours, all, then each other tool found."""
        if self.sources.stores is None:
            why = f"reading them failed: {clean(self.sources.error, 200)}" if self.sources.error \
                else "still reading them: try again in a moment"
            self.notify(f"the other tools' stores: {why}", markup=False)
            return
        if not self.sources.found:
            self.notify(f"no other tool's models found (other_stores in the config names the places; "
                        f"{self.key_shown('rescan')} reads them again)", markup=False)
            return
        self.sources.next()
        self.refresh_catalog()

    def action_rescan_all(self: GgufApp) -> None:
        """ctrl+r: our store, then the other tools' stores (they follow our scan)."""
        self._others_read_wanted = True
        self.rescan()

    def confirm_delete_other(self: GgufApp, model: OtherModel) -> None:
        """D on another tool's model: a confirmation naming the tool, then its own delete."""
        body = others_summary([model])
        body.append("\n")
        for entry in model.files[:6]:
            body.append(f"\n  {ellipsize(clean(str(entry.path)), 64)}")

        def answer(yes: bool | None) -> None:
            if yes:
                self.delete_others([model])

        title = f"Delete {ellipsize(clean(model.name), 40)} from {TOOL_TITLES.get(model.tool, model.tool)}?"
        self.push_screen(ConfirmScreen(title, body, yes_label="Delete"), answer)

    @work(thread=True, group="store-ops", exit_on_error=False)
    def delete_others(self: GgufApp, models: list[OtherModel]) -> None:
        from gguf_tui.store.others_delete import OtherDeleteError

        done, kept = [], []
        for model in models:
            try:
                paths = self.store.delete_other(model)
            except (OtherDeleteError, OSError) as exc:
                kept.append(f"kept [{source_label(model.tool)}] {clean(model.name, 60)}: "
                            f"{clean(str(exc), 120)}")
                continue
            done.append(f"[{source_label(model.tool)}] {clean(model.name, 60)} "
                        f"({len(paths)} file{'s' if len(paths) != 1 else ''} removed)")
        text = "; ".join(([f"deleted {', '.join(done[:3])}"] if done else []) + kept[:3])
        if len(done) > 3:
            text += f" and {len(done) - 3} more"
        self.post_message(msg.StoreOpDone(text or "nothing deleted", "warning" if kept else "information",
                                          others_changed=True))
