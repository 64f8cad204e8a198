"""The store as the dashboard uses it: scan, delete, verify, prune partials, watch for changes.

A thin seam over `gguf_tui.store` so tests can pin what varies between machines (free space)
and so every blocking call is named in one place: the app runs them in threads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gguf_tui.config import Config
from gguf_tui.store.allstores import AllStores, scan_others_with
from gguf_tui.store.others import OtherModel, OtherStoresSnapshot
from gguf_tui.store.others_delete import remove_other_model
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.ops import DeleteResult, VerifyResult, delete_model, verify_model
from gguf_tui.store.prune import PrunePlan, PruneResult, carry_out
from gguf_tui.store.scan import StoreModel, StoreSnapshot, scan_store
from gguf_tui.store.usage import free_space, list_partials


class StorePort:
    def __init__(self, config: Config, *, fixed_free_space: int | None = None) -> None:
        self.config = config
        self.layout = StoreLayout(config.store)
        self.fixed_free_space = fixed_free_space

    def scan(self) -> StoreSnapshot:
        """Blocking: reads manifests and the headers of unmanaged files."""
        snapshot = scan_store(self.layout)
        if self.fixed_free_space is not None:
            snapshot = dataclasses.replace(snapshot, free_space=self.fixed_free_space)
        return snapshot

    def free_space(self) -> int:
        if self.fixed_free_space is not None:
            return self.fixed_free_space
        return free_space(self.layout.root)

    def delete(self, model: StoreModel, snapshot: StoreSnapshot | None) -> DeleteResult:
        return delete_model(self.layout, model, snapshot=snapshot)

    def verify(self, model: StoreModel) -> VerifyResult:
        return verify_model(model)

    def prune(self, models: list[StoreModel], partials: list[Any], snapshot: StoreSnapshot) -> PruneResult:
        """Delete the chosen models and abandoned partials (re-checking downloads first)."""
        from gguf_tui.store.prune import PruneItem

        plan = PrunePlan(
            models=[PruneItem(model, "chosen on the prune screen") for model in models],
            partials=[p for p in partials if p.abandoned],
            store_size=snapshot.total_size,
        )
        return carry_out(self.layout, plan, snapshot)

    def scan_others(self, ours: StoreSnapshot, others: OtherStoresSnapshot | None = None) -> AllStores:
        """Blocking: the other tools' stores (GGUF headers cached per file, so a warm scan is
        quick) and the duplicates across them and `ours`; nothing is hashed. With `others`,
        that earlier scan is kept and only the duplicates are found again."""
        return scan_others_with(self.config, ours, others)

    def delete_other(self, model: OtherModel) -> list[Path]:
        """Remove another tool's model the way that tool would (its own rules for shared blobs)."""
        return remove_other_model(model)

    def watch(self) -> AsyncIterator[Any] | None:
        """The store watcher: files added, removed or renamed by hand or by other tools,
        manifests written by other processes (their downloads, verifies and deletes), and
        partial downloads of any process (started, growing, paused, removed)."""
        from gguf_tui.store.watcher import watch_store

        return watch_store(self.layout.root, include_manifests=True, include_partials=True)

    def partials(self) -> list[Any]:
        """Blocking but cheap: the partial downloads folder and their resume states only."""
        return list_partials(self.layout)
