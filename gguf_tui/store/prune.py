"""Freeing space by policy: models unused for a while, least recently used until the store fits,
and abandoned partial downloads. Planning is separate from doing, so `--dry-run` and the TUI's
prune screen show exactly what would go."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.ops import DeleteResult, StoreBusyError, busy_files, delete_model
from gguf_tui.store.scan import STATE_DOWNLOADING, STATE_PAUSED, StoreModel, StoreSnapshot
from gguf_tui.store.usage import ActiveDownloads, PartialDownload, active_downloads, remove_partial


@dataclass
class PruneItem:
    model: StoreModel
    reason: str  # "unused for 45 days", "least recently used"

    def to_json(self) -> dict:
        return {
            "name": self.model.name,
            "size": self.model.disk_bytes,
            "last_used_at": self.model.last_used_at,
            "lru_time": self.model.lru_time,
            "managed": self.model.managed,
            "reason": self.reason,
        }


@dataclass
class PrunePlan:
    models: list[PruneItem] = field(default_factory=list)  # least recently used first
    partials: list[PartialDownload] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (model name, why kept)
    store_size: int = 0
    max_size: int | None = None

    @property
    def models_bytes(self) -> int:
        return _store_bytes([item.model for item in self.models])

    @property
    def partials_bytes(self) -> int:
        """Disk space the partials hold (preallocation included): what deleting them frees."""
        return sum(partial.allocated_bytes for partial in self.partials)

    @property
    def freed(self) -> int:
        return self.models_bytes + self.partials_bytes

    @property
    def fits(self) -> bool:
        return self.max_size is None or self.store_size - self.models_bytes <= self.max_size

    def to_json(self) -> dict:
        return {
            "models": [item.to_json() for item in self.models],
            "partials": [partial.to_json() for partial in self.partials],
            "skipped": [{"name": name, "reason": why} for name, why in self.skipped],
            "freed": self.freed,
            "store_size": self.store_size,
            "max_size": self.max_size,
            "fits": self.fits,
        }


def _store_bytes(models: list[StoreModel]) -> int:
    seen: set = set()
    total = 0
    for model in models:
        for entry in model.files:
            if entry.disk_bytes and entry.inode not in seen:
                seen.add(entry.inode)
                total += entry.disk_bytes
    return total


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:.0f} days" if days >= 2 else f"{seconds / 3600:.0f} hours"


def plan_prune(
    snapshot: StoreSnapshot,
    layout: StoreLayout,
    *,
    max_size: int | None = None,
    unused_for: float | None = None,
    partials: bool = False,
    now: float | None = None,
    active: ActiveDownloads | None = None,
) -> PrunePlan:
    """What a prune would delete. Models: first those unused for `unused_for` seconds, then the
    least recently used until the model files fit in `max_size` bytes. A model a download in
    progress owns, or the files of an unfinished download, are never planned."""
    now = time.time() if now is None else now
    active = active if active is not None else active_downloads(layout)
    plan = PrunePlan(store_size=snapshot.total_size, max_size=max_size)
    candidates: list[StoreModel] = []
    for model in sorted(snapshot.models, key=lambda m: (m.lru_time, m.name)):
        if model.state in (STATE_DOWNLOADING, STATE_PAUSED):
            plan.skipped.append((model.name, f"its download is {model.state.split()[-1]}"))
            continue
        busy = busy_files(model, active)
        if busy:
            plan.skipped.append((model.name, busy[0][1]))
            continue
        candidates.append(model)
    chosen: list[StoreModel] = []
    if unused_for is not None:
        for model in candidates:
            idle = now - model.lru_time
            if idle >= unused_for:
                chosen.append(model)
                plan.models.append(PruneItem(model, f"unused for {_days(idle)}"))
    if max_size is not None:
        for model in candidates:
            if snapshot.total_size - _store_bytes(chosen) <= max_size:
                break
            if any(model is already for already in chosen):
                continue
            if _store_bytes(chosen + [model]) == _store_bytes(chosen):
                continue  # frees nothing here (a symlink, or bytes another model keeps)
            chosen.append(model)
            plan.models.append(PruneItem(model, "least recently used"))
    plan.models.sort(key=lambda item: (item.model.lru_time, item.model.name))
    if partials:
        for partial in snapshot.partials:
            if not partial.abandoned:
                continue
            if unused_for is not None and now - partial.updated_at < unused_for:
                continue
            plan.partials.append(partial)
    return plan


@dataclass
class PruneResult:
    deleted: list[DeleteResult] = field(default_factory=list)
    partials_removed: list[PartialDownload] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (what, why)

    @property
    def freed(self) -> int:
        partials = sum(p.allocated_bytes for p in self.partials_removed)
        return sum(r.freed for r in self.deleted) + partials

    def to_json(self) -> dict:
        return {
            "deleted": [r.to_json() for r in self.deleted],
            "partials_removed": [p.to_json() for p in self.partials_removed],
            "refused": [{"name": name, "reason": why} for name, why in self.refused],
            "freed": self.freed,
        }


def carry_out(
    layout: StoreLayout, plan: PrunePlan, snapshot: StoreSnapshot | None = None
) -> PruneResult:
    """Delete what the plan lists, re-checking downloads in progress just before each model.

    Whatever could not be deleted is in `refused` with the reason (a model is deleted whole or
    not at all). Raises UnsafeStoreError, deleting nothing, when the hidden folder is a link.
    """
    layout.check_hidden()
    result = PruneResult()
    for item in plan.models:
        try:
            deleted = delete_model(
                layout, item.model, snapshot=snapshot, active=active_downloads(layout)
            )
        except StoreBusyError as exc:
            result.refused.append((item.model.name, str(exc)))
            continue
        except OSError as exc:
            result.refused.append((item.model.name, exc.strerror or str(exc)))
            continue
        if deleted.removed or deleted.links_removed or deleted.manifest_removed:
            result.deleted.append(deleted)
        for path, why in deleted.kept:
            result.refused.append((f"{item.model.name}: {path}", why))
    for partial in plan.partials:
        what = partial.dest or partial.key
        try:
            removed = remove_partial(layout, partial)
        except OSError as exc:
            result.refused.append((f"partial download {what}", exc.strerror or str(exc)))
            continue
        if removed:
            result.partials_removed.append(partial)
        else:
            result.refused.append((f"partial download {what}", "a download took it over meanwhile"))
    return result
