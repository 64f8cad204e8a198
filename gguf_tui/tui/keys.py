"""Every key of the dashboard: one table, with the binding ids that `ui.keymap` remaps.

The defaults are DESIGN.md section 6. Each key lives in the `BINDINGS` of the place it acts on
(the app, the catalog pane, the queue pane), so the footer shows the few keys of the focused
pane; the help screen and the config documentation read this same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

APP = "app"
SCREEN = "screen"  # the main screen: replaces Screen's own tab / shift+tab
CATALOG = "catalog"
QUEUE = "queue"


@dataclass(frozen=True)
class KeySpec:
    id: str  # the binding id a user names in `ui.keymap`
    key: str  # Textual key name(s), comma separated
    action: str
    description: str  # short: shown in the footer
    help: str  # one line: shown on the help screen
    scope: str
    show: bool = True


KEYS: tuple[KeySpec, ...] = (
    KeySpec("next_pane", "tab", "app.cycle_pane(1)", "next pane", "Next pane: catalog, queue, detail", SCREEN, show=False),
    KeySpec("prev_pane", "shift+tab", "app.cycle_pane(-1)", "prev pane", "Previous pane", SCREEN, show=False),
    KeySpec("search", "slash", "search", "search", "Search the Hub for GGUF repos", APP),
    KeySpec("open", "enter", "app.open", "open", "Open the highlighted repo (its quantisations) or file", CATALOG),
    KeySpec("download", "d", "app.download", "get", "Download the highlighted quantisation or file", CATALOG),
    KeySpec("delete", "D", "app.delete", "delete", "Delete the highlighted local model, or another tool's as that tool would (asks first)", CATALOG),
    KeySpec("fit_filter", "f", "app.fit_filter", "fits", "Show only the opened repo's quants that fit the GPUs (again: all)", CATALOG, show=False),
    KeySpec("ctx_cycle", "x", "app.ctx_cycle", "context", "Cycle the fit column's context: 4k, 8k, 32k, the trained maximum", CATALOG, show=False),
    KeySpec("source_filter", "s", "app.source_filter", "source", "Cycle the catalog's source: ours, all, then each other tool found (hf, llama.cpp, lmstudio, ollama)", CATALOG),
    KeySpec("verify", "V", "app.verify", "verify", "Re-hash the highlighted local model", CATALOG, show=False),
    KeySpec("pause", "space", "app.toggle_pause", "pause", "Pause / resume the highlighted download", QUEUE),
    KeySpec("cancel", "c", "app.cancel", "cancel", "Cancel the highlighted download (asks first); clear a finished one", QUEUE),
    KeySpec("retry", "r", "app.retry", "retry", "Retry a failed or cancelled download", QUEUE),
    KeySpec("move_up", "K", "app.move(-1)", "up", "Move the highlighted download up the queue", QUEUE),
    KeySpec("move_down", "J", "app.move(1)", "down", "Move the highlighted download down the queue", QUEUE),
    KeySpec("prune", "p", "prune", "prune", "Open the prune screen", APP, show=False),
    KeySpec("help", "question_mark", "help", "keys", "This help: every key", APP),
    KeySpec("quit", "q", "quit", "quit", "Leave; downloads go on in the engine service (with --local they pause)", APP),
    KeySpec("quit_pause", "Q", "quit_pause", "quit+pause", "Quit and pause every download (their state is saved)", APP, show=False),
    KeySpec("restart_engine", "R", "restart_engine", "restart engine", "Start the engine service again after it stopped", APP, show=False),
    KeySpec("rescan", "ctrl+r", "rescan_all", "rescan", "Read our store and the other tools' stores again", APP, show=False),
    KeySpec("command_palette", "ctrl+p", "command_palette", "commands", "Command palette", APP, show=False),
)

KEY_IDS = frozenset(spec.id for spec in KEYS)


def key_for(key_id: str, keymap: dict[str, str] | None = None) -> str:
    """The Textual key name(s) bound to `key_id`: a `ui.keymap` remap wins over the default,
    so every text that names a key (help, palette, notices) stays true after a remap."""
    spec = next(spec for spec in KEYS if spec.id == key_id)
    return (keymap or {}).get(key_id) or spec.key


def bindings(scope: str) -> list[Binding]:
    """The Binding objects of one scope, each carrying its id for `App.set_keymap`."""
    result = []
    for spec in KEYS:
        if spec.scope != scope:
            continue
        result.append(
            Binding(
                spec.key,
                spec.action,
                spec.description,
                show=spec.show,
                id=spec.id,
                priority=spec.id == "command_palette",
            )
        )
    return result
