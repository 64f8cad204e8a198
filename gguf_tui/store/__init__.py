"""The model store: layout, manifests, scan, watcher, disk usage, prune, import, locks."""

from gguf_tui.store.layout import StoreLayout, UnsafePathError

__all__ = ["StoreLayout", "UnsafePathError"]
