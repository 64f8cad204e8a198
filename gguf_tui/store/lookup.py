"""Which model the user means: a name, a path to one of its files, or a unique prefix."""

from __future__ import annotations

import os
from pathlib import Path

from gguf_tui.store.scan import StoreModel, StoreSnapshot


class ModelLookupError(LookupError):
    """No model, or more than one, answers to what the user typed."""


class ModelNotFound(ModelLookupError):
    pass


class AmbiguousModel(ModelLookupError):
    def __init__(self, query: str, candidates: list[StoreModel]) -> None:
        names = ", ".join(m.name for m in candidates[:8])
        more = f" and {len(candidates) - 8} more" if len(candidates) > 8 else ""
        super().__init__(
            f"'{query}' matches {len(candidates)} models: {names}{more}; be more specific"
        )
        self.candidates = candidates


def _short_name(name: str) -> str:
    """'owner/Repo-GGUF:Q4_K_M' -> 'Repo-GGUF:Q4_K_M': prefixes may skip the owner."""
    return name.split("/", 1)[1] if "/" in name else name


def find_model(snapshot: StoreSnapshot, query: str, cwd: Path | None = None) -> StoreModel:
    """The model named `query`, holding the file at path `query`, or with `query` as a unique
    name prefix (case-insensitive, with or without the owner). Raises ModelLookupError."""
    models = snapshot.models
    exact = [m for m in models if m.name == query]
    if exact:
        return exact[0]
    by_path = _by_path(snapshot, query, cwd)
    if by_path is not None:
        return by_path
    by_file = [m for m in models if any(Path(f.relative).name == query for f in m.files)]
    if len(by_file) == 1:
        return by_file[0]
    lowered = query.lower()
    for candidates in (
        [m for m in models if m.name.lower() == lowered],
        [m for m in models if m.name.lower().startswith(lowered)],
        [m for m in models if _short_name(m.name).lower().startswith(lowered)],
        by_file,
    ):
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise AmbiguousModel(query, candidates)
    raise ModelNotFound(f"no model '{query}' in the store {snapshot.root} (see 'gguf-tui ls')")


def _by_path(snapshot: StoreSnapshot, query: str, cwd: Path | None) -> StoreModel | None:
    if "/" not in query and not query.lower().endswith(".gguf"):
        return None
    given = Path(query)
    from_cwd = given if given.is_absolute() else (cwd or Path.cwd()) / given
    candidates = [snapshot.root / query, from_cwd]
    for candidate in candidates:
        wanted = os.path.normpath(os.path.abspath(candidate))
        for model in snapshot.models:
            for entry in model.files:
                if os.path.normpath(os.path.abspath(entry.path)) == wanted:
                    return model
    return None
