"""Verdicts for a Hub repo's quants from remote headers, each header read once per process.

Headers are read with the Hub client's Range requests (`hub/remote.py`) and cached per
(repo, revision, path): the catalog asks again whenever a row comes into view or the context
changes, and only the first ask costs requests. Pass the commit as `revision` when it is known,
so a branch that moves does not serve a stale header.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from gguf_tui.fit.devices import Inventory
from gguf_tui.fit.estimate import Estimate, ModelFiles, estimate
from gguf_tui.fit.verdict import Verdict, judge
from gguf_tui.gguf.info import GGUFInfo
from gguf_tui.hub.models import HubFile, QuantGroup

CACHE_ENTRIES = 512  # a GGUFInfo keeps at most 64 KiB of metadata: 512 of them stay small
CONCURRENT_READS = 4


class HeaderCache:
    """Remote GGUF headers by (repo, revision, path); concurrent asks share one read."""

    def __init__(self, max_entries: int = CACHE_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str, str], asyncio.Future[GGUFInfo]] = OrderedDict()
        self.reads = 0  # headers actually fetched (for tests and the status line)

    async def get(self, client: Any, repo: str, revision: str, path: str) -> GGUFInfo:
        """The header of `path`; raises what the read raised (a failed read is not cached)."""
        key = (repo, revision, path)
        future = self._entries.get(key)
        if future is not None:
            self._entries.move_to_end(key)
            return await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._entries[key] = future
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        try:
            self.reads += 1
            info, _fetched = await client.read_gguf_header(repo, path, revision)
        except BaseException as exc:
            self._entries.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        future.set_result(info)
        return info


async def read_model_files(
    client: Any, cache: HeaderCache, repo: str, revision: str, group: QuantGroup,
    mmproj: HubFile | None,
) -> ModelFiles:
    """The headers of a quant's parts (and the mmproj), read concurrently through the cache."""
    files = [*group.files, *([mmproj] if mmproj else [])]
    infos = await asyncio.gather(*(cache.get(client, repo, revision, f.path) for f in files))
    sizes = [f.size for f in files]
    total = sum(s for s in sizes if s is not None) if None not in sizes else None
    parts = tuple(infos[: len(group.files)])
    return ModelFiles(parts=parts, mmproj=infos[-1] if mmproj else None, file_bytes=total)


async def quant_verdict(
    client: Any, cache: HeaderCache, repo: str, revision: str, group: QuantGroup,
    mmproj: HubFile | None, inventory: Inventory, n_ctx: int | None = None,
    cache_type: str = "f16",
) -> Verdict:
    """Read (or recall) a quant's headers and judge it against `inventory` at `n_ctx`."""
    if not group.complete:
        missing = ", ".join(map(str, group.missing_parts))
        return judge(
            Estimate(n_ctx=n_ctx or 0, cache_type=cache_type, error=f"split part {missing} missing"),
            inventory,
        )
    model = await read_model_files(client, cache, repo, revision, group, mmproj)
    return judge(estimate(model, n_ctx, cache_type), inventory)


async def repo_verdicts(
    client: Any, cache: HeaderCache, repo: str, revision: str, groups: list[QuantGroup],
    mmproj: HubFile | None, inventory: Inventory, n_ctx: int | None = None,
    cache_type: str = "f16",
) -> list[Verdict | Exception]:
    """A verdict per group, at most `CONCURRENT_READS` groups read at a time; a group whose
    headers cannot be read gets its exception in place of a verdict."""
    gate = asyncio.Semaphore(CONCURRENT_READS)

    async def one(group: QuantGroup) -> Verdict | Exception:
        async with gate:
            try:
                return await quant_verdict(client, cache, repo, revision, group, mmproj,
                                           inventory, n_ctx, cache_type)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - reported per row, the others go on
                return exc

    return list(await asyncio.gather(*(one(g) for g in groups)))
