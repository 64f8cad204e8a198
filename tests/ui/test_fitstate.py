"""The fit column's state without widgets: the context cycle, labels, the filter's rule."""

from __future__ import annotations

import pytest

from gguf_tui.fit.devices import Inventory, parse_stated
from gguf_tui.fit.estimate import ModelFiles, estimate
from gguf_tui.fit.verdict import judge
from gguf_tui.gguf import read_gguf
from gguf_tui.tui.fitstate import TRAINED, FitState, context_text, fit_lines
from tests.helpers.fitrepo import FIT_GPUS, make_fit_quants


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory):
    inventory = Inventory(gpus=parse_stated(FIT_GPUS))
    files = make_fit_quants(tmp_path_factory.mktemp("fitstate"))
    return inventory, {
        path: judge(estimate(ModelFiles(parts=(read_gguf(file),))), inventory) for path, file in files.items()
    }


def test_context_cycle_and_labels(verdicts) -> None:
    inventory, by_path = verdicts
    fit = FitState(inventory=inventory)
    key = ("acme/Fit-GGUF", "Q8_0")
    assert fit.label(key) == ""  # not asked for
    fit.pending.add(key)
    assert fit.label(key) == "…"
    fit.add(key, by_path["Fit-Q8_0.gguf"])
    assert fit.label(key) == "✓ GPU" and fit.fits(key)
    seen = [fit.cycle_context() for _ in range(5)]
    assert seen == [4096, 8192, 32768, TRAINED, 4096]
    assert [context_text(n) for n in (None, 4096, 32768, TRAINED)] == ["8k", "4k", "32k", "max"]
    fit.context = 32768
    fit.cycle_context()  # to the trained maximum: 65536 for this model
    assert fit.verdict(key).estimate.n_ctx == 65536 and fit.label(key) == "◐ 1/4"
    assert fit.fits(key)  # partial offload counts as fitting
    fit.add(("acme/Fit-GGUF", "F16"), by_path["Fit-F16.gguf"])
    assert not fit.fits(("acme/Fit-GGUF", "F16"))


def test_failed_read_and_devices_off() -> None:
    fit = FitState()
    key = ("acme/Fit-GGUF", "Q4_0")
    assert fit.label(key) == "…" and fit_lines(fit, key) == ["detecting the GPUs…"]
    fit.device_error = "GGUF_TUI_GPUS / fit.gpus: not a size"
    assert fit.label(key) == "" and fit_lines(fit, key)[0].startswith("off:")
    fit.inventory = Inventory()
    fit.add(key, "HTTP 404")
    assert fit.label(key) == "? n/a" and "HTTP 404" in fit_lines(fit, key)[0]
    fit.forget("acme/Fit-GGUF")
    assert key not in fit.base
