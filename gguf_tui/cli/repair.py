"""`gguf-tui verify --repair`: download the files a verify found bad, from the recorded source."""

from __future__ import annotations

import asyncio
import sys

from gguf_tui.config import Config
from gguf_tui.engine import Engine, JobSpec, JobState
from gguf_tui.textsafe import plain


def repair_models(specs: list[JobSpec], config: Config) -> list[tuple[str, bool, str]]:
    """Run the repair jobs with progress on stderr; (model, repaired, message) for each."""
    return asyncio.run(_repair(specs, config))


async def _repair(specs: list[JobSpec], config: Config) -> list[tuple[str, bool, str]]:
    from gguf_tui.cli.progress import ProgressPrinter
    from gguf_tui.cli.progress import drain as _drain
    from gguf_tui.cli.progress import pump as _pump
    from gguf_tui.hub import HubClient

    hub = HubClient.from_config(config)
    printer = ProgressPrinter(json_mode=False)
    engine = Engine(config, auth_headers_for=hub.auth_headers_for)
    stream = engine.subscribe()
    pump = None
    outcomes = []
    try:
        await engine.start()
        pump = asyncio.ensure_future(_pump(stream, printer))
        for spec in specs:
            job = await engine.wait(await engine.enqueue(spec))
            await asyncio.sleep(0)
            _drain(stream, printer)
            printer.finish()
            repaired = job.state == JobState.COMPLETED
            message = "repaired" if repaired else plain(job.message) or job.state.value
            if job.state == JobState.PAUSED:
                message += " (run 'gguf-tui verify --repair' again to resume)"
            outcomes.append((spec.name, repaired, message))
    finally:
        if pump is not None:
            pump.cancel()
        stream.close()
        await engine.close()
        await hub.close()
    printer.finish()
    sys.stderr.flush()
    return outcomes
