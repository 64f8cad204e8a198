"""The catalog's fit column: devices, a verdict per opened quant, the chosen context.

No widgets here: the app feeds it devices (detected once, in a thread) and verdicts (headers
read by a worker through one `HeaderCache`), and the catalog and detail pane read labels and
verdicts from it. A context change re-judges the estimates already made (`at_context`), so no
header is read again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gguf_tui.fit.devices import Inventory
from gguf_tui.fit.estimate import DEFAULT_CONTEXT, at_context
from gguf_tui.fit.remote import HeaderCache
from gguf_tui.fit.report import breakdown
from gguf_tui.fit.verdict import GPU, PARTIAL, Verdict, judge, short_label

TRAINED = 0  # the context step meaning "the model's trained maximum"
CONTEXT_STEPS = (4096, 8192, 32768, TRAINED)  # what the context key cycles through
PENDING_LABEL = "…"
FitKey = tuple[str, str]  # (repo, quant group name)


def context_text(n_ctx: int | None) -> str:
    """'8k', '32k', 'max' (the trained maximum), or the number; None: the default context."""
    if n_ctx is None:
        n_ctx = DEFAULT_CONTEXT
    if n_ctx == TRAINED:
        return "max"
    return f"{n_ctx // 1024}k" if n_ctx % 1024 == 0 else str(n_ctx)


@dataclass
class FitState:
    """Verdicts of the opened repos' quants at the chosen context, and the fit filter."""

    context: int | None = None  # the config's `fit.context`; TRAINED; None: the estimate's default
    cache_type: str = "f16"
    inventory: Inventory | None = None  # None until detected
    device_error: str | None = None
    only_fitting: bool = False
    cache: HeaderCache = field(default_factory=HeaderCache)
    base: dict[FitKey, Verdict | str] = field(default_factory=dict)  # as read; str: why none
    verdicts: dict[FitKey, Verdict] = field(default_factory=dict)  # at `context`
    pending: set[FitKey] = field(default_factory=set)

    @property
    def ready(self) -> bool:
        return self.inventory is not None

    def read_context(self) -> int | None:
        """The context headers are judged at first (the trained maximum is per model)."""
        return None if self.context == TRAINED else self.context

    def add(self, key: FitKey, result: Verdict | str) -> None:
        self.pending.discard(key)
        self.base[key] = result
        if isinstance(result, Verdict):
            self.verdicts[key] = self._at_context(result)

    def cycle_context(self) -> int:
        """Step to the next context and re-judge every verdict there; returns the new step."""
        steps = list(CONTEXT_STEPS)
        current = self.context if self.context in steps else None
        self.context = steps[(steps.index(current) + 1) % len(steps)] if current is not None else steps[0]
        for key, result in self.base.items():
            if isinstance(result, Verdict):
                self.verdicts[key] = self._at_context(result)
        return self.context

    def _at_context(self, base: Verdict) -> Verdict:
        estimate = base.estimate
        if estimate.error or self.inventory is None:
            return base
        target = self.context
        if target == TRAINED:
            shape = estimate.shape
            target = (shape.trained_context if shape else None) or DEFAULT_CONTEXT
        if target is None or target == estimate.n_ctx:
            return base
        return judge(at_context(estimate, target), self.inventory)

    def label(self, key: FitKey) -> str:
        """The row's fit cell: a verdict's short label, '…' while reading, '? n/a' on failure."""
        if key in self.verdicts:
            return short_label(self.verdicts[key])
        if isinstance(self.base.get(key), str):
            return "? n/a"
        if key in self.pending or (self.inventory is None and self.device_error is None):
            return PENDING_LABEL
        return ""

    def fits(self, key: FitKey) -> bool:
        """True when the quant runs wholly or partly on a GPU (what the fit filter keeps)."""
        verdict = self.verdicts.get(key)
        return verdict is not None and verdict.status in (GPU, PARTIAL)

    def verdict(self, key: FitKey) -> Verdict | None:
        return self.verdicts.get(key)

    def forget(self, repo: str) -> None:
        """A repo listed again may have other files: its verdicts are read again."""
        for store in (self.base, self.verdicts):
            for key in [k for k in store if k[0] == repo]:
                del store[key]
        self.pending = {k for k in self.pending if k[0] != repo}


def fit_lines(fit: FitState, key: FitKey) -> list[str]:
    """The detail pane's fit lines for one quant: the breakdown, or why there is none yet.

    The first word of each breakdown line is dropped ('fit'): the pane shows its own label.
    """
    verdict = fit.verdict(key)
    if verdict is not None and verdict.estimate.error:
        return [f"cannot estimate: {verdict.estimate.error}"]  # no context was judged
    if verdict is not None and fit.inventory is not None:
        lines = breakdown(verdict, fit.inventory)
        return [lines[0].removeprefix("fit").strip(), *lines[1:]]
    result = fit.base.get(key)
    if isinstance(result, str):
        return [f"cannot read the header: {result}"]
    if fit.device_error:
        return [f"off: {fit.device_error}"]
    return ["reading the header…"] if fit.ready else ["detecting the GPUs…"]
