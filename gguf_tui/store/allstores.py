"""Every model on the box in one view: our store, the other tools' stores, and duplicates.

For the dashboard (catalog source column and filter, the status bar's second figure, the prune
screen's reclaimable space): `scan_all` runs in a worker thread and never hashes a file, so it
stays fast; duplicates it reports are those the layouts' names and the hash cache already prove.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from gguf_tui.store.dedupe import Copy, DuplicateGroup, collect_copies, find_duplicates, hash_cache_for
from gguf_tui.store.layout import StoreLayout
from gguf_tui.store.others import OTHER_TOOLS, TOOL_OURS, OtherModel, OtherStoresSnapshot
from gguf_tui.store.others import scan_configured
from gguf_tui.store.scan import StoreModel, StoreSnapshot, scan_store

SOURCE_ALL = "all"
# What a confirmation calls each tool's store (a delete there names it).
TOOL_TITLES = {"hf": "the Hugging Face cache", "llama.cpp": "llama.cpp's cache",
               "lmstudio": "LM Studio's models folder", "ollama": "Ollama's store"}
# The catalog's filter, in the order a key cycles through it.
SOURCE_FILTERS = (TOOL_OURS, SOURCE_ALL, *OTHER_TOOLS)


@dataclass
class AllStores:
    ours: StoreSnapshot
    others: OtherStoresSnapshot
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    # Files that share their size with another file but whose SHA-256 nobody knows yet:
    # only hashing (`gguf-tui dedupe`) can tell whether they are duplicates.
    unchecked: list[Copy] = field(default_factory=list)

    @property
    def other_stores_bytes(self) -> int:
        """The status bar's second figure: what the other tools' stores hold."""
        return self.others.total_size

    @property
    def reclaimable_bytes(self) -> int:
        """What `gguf-tui dedupe` would free (same filesystem only)."""
        return sum(group.reclaimable_bytes for group in self.duplicates)

    def rows(self, source: str = SOURCE_ALL) -> list[tuple[str, StoreModel | OtherModel]]:
        """(source tool, model) for the catalog under a filter from SOURCE_FILTERS."""
        rows: list[tuple[str, Any]] = []
        if source in (TOOL_OURS, SOURCE_ALL):
            rows += [(TOOL_OURS, model) for model in self.ours.models]
        rows += [(m.tool, m) for m in self.others.models if source in (SOURCE_ALL, m.tool)]
        return rows


    def groups_of(self, paths: list[str]) -> list[DuplicateGroup]:
        """The duplicate groups holding any of `paths` (data paths: an HF blob, not its link)."""
        wanted = set(paths)
        return [g for g in self.duplicates if any(str(c.path) in wanted for c in g.copies)]

    @cached_property
    def duplicate_paths(self) -> set[str]:
        """Every path that some other distinct file duplicates (the catalog's 'dup' mark)."""
        return {str(c.path) for g in self.duplicates for c in g.copies}


def scan_all(config: Any) -> AllStores:
    """Our store and the configured other stores, with the duplicates known without hashing."""
    return scan_others_with(config, scan_store(StoreLayout(config.store)))


def scan_others_with(config: Any, ours: StoreSnapshot,
                     others: OtherStoresSnapshot | None = None) -> AllStores:
    """The other stores and the duplicates across them and `ours` (a scan the caller already
    has: the dashboard's store watcher keeps one), without hashing anything. With `others`
    (an earlier scan of them), only the duplicates are found again: what our store's changes
    need, without reading every other store again."""
    if others is None:
        others = scan_configured(config)
    cache = hash_cache_for(StoreLayout(config.store))
    copies = collect_copies(ours, others)
    groups = find_duplicates(copies, cache, hash_missing=False)
    return AllStores(ours, others, groups, unchecked_copies(copies, cache))


def unchecked_copies(copies: list[Copy], cache: Any) -> list[Copy]:
    """One copy per inode that has a same-size partner but no known SHA-256."""
    by_size: dict[int, dict[tuple[int, int], Copy]] = {}
    for copy in copies:
        if copy.size > 0:
            by_size.setdefault(copy.size, {}).setdefault((copy.device, copy.inode), copy)
    return [
        copy
        for inodes in by_size.values() if len(inodes) > 1
        for copy in inodes.values() if not copy.sha256 and cache.get(copy) is None
    ]
