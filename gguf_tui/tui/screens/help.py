"""The help screen (`?`): every key with its id (for `ui.keymap`) and what it does."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gguf_tui.tui import keys

SCOPE_TITLES = {keys.APP: "Everywhere", keys.CATALOG: "Catalog pane", keys.QUEUE: "Queue pane"}
SCOPE_ORDER = ((keys.SCREEN, keys.APP), (keys.CATALOG,), (keys.QUEUE,))

PRUNE_KEYS = (
    ("space", "mark / unmark the highlighted row"),
    ("s", "sort models by size"),
    ("u", "sort models by last use"),
    ("a", "mark every row of the list / clear the marks"),
    ("o", "list the other tools' models too, each with its tool"),
    ("tab", "switch between models and partial downloads"),
    ("d, enter", "delete what is marked (asks first)"),
    ("escape", "back"),
)
DIALOG_KEYS = (("y, enter", "yes"), ("n, escape", "no"))


def key_display(app, key_string: str) -> str:
    return ", ".join(app.get_key_display(Binding(key.strip(), "")) for key in key_string.split(","))


def help_entries(app, keymap: dict[str, str]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Sections of (keys as shown, what it does, binding id or '')."""
    sections = []
    for scopes in SCOPE_ORDER:
        entries = [
            (key_display(app, keymap.get(spec.id, spec.key)), spec.help, spec.id)
            for spec in keys.KEYS
            if spec.scope in scopes
        ]
        sections.append((SCOPE_TITLES[scopes[-1]], entries))
    sections.append(("Prune screen (p)", [(k, what, "") for k, what in PRUNE_KEYS]))
    sections.append(("Questions", [(k, what, "") for k, what in DIALOG_KEYS]))
    return sections


def help_table(app, keymap: dict[str, str]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, style="bold", min_width=10)
    table.add_column(ratio=1)
    table.add_column(no_wrap=True, style="dim")
    for title, entries in help_entries(app, keymap):
        table.add_row(Text(title, style="bold underline"), "", "")
        for shown, what, binding_id in entries:
            table.add_row(Text(shown), Text(what), Text(binding_id))
        table.add_row("", "", "")
    table.add_row(
        "",
        Text(
            "Remap keys in the config file by id (right column), e.g. ui.keymap: {pause: x, "
            "prune: P}. ctrl+p lists every action by name. A mouse works but is never needed.",
            style="dim",
        ),
        "",
    )
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark", "close", "close", show=True),
        Binding("pageup", "scroll(-10)", show=False),
        Binding("pagedown", "scroll(10)", show=False),
        Binding("up", "scroll(-1)", show=False),
        Binding("down", "scroll(1)", show=False),
    ]

    def __init__(self, keymap: dict[str, str]) -> None:
        super().__init__(classes="dialog-screen")
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help-dialog"):
            yield Static(Text("Keys", style="bold"), classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_table(self.app, self.keymap), id="help-text")
            yield Static(Text("escape closes · arrows scroll", style="dim"), classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_scroll(self, delta: int) -> None:
        scroll = self.query_one("#help-scroll", VerticalScroll)
        scroll.scroll_relative(y=delta, animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
