"""The Hub search prompt (`/`): type a query, enter searches, escape goes back."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class SearchScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "back", show=True)]

    def __init__(self, query: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.query_text = query

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog search-dialog"):
            yield Static(Text("Search the Hub for GGUF repos", style="bold"), classes="dialog-title")
            yield Input(
                value=self.query_text,
                placeholder="e.g. qwen3 8b, llama 3.1, gemma",
                id="search-input",
            )
            yield Static(
                Text("enter search · escape back · an empty query clears the results", style="dim"),
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        self.set_focus(self.query_one(Input))

    def on_key(self, event: events.Key) -> None:
        """Keys typed right after `/` (type-ahead over SSH) arrive before the input has focus:
        they belong in the query, not to the screens underneath (where `q` quits)."""
        fields = self.query(Input)
        if not fields or fields.first().has_focus:
            return
        field = fields.first()
        if event.is_printable and event.character:
            event.stop()
            self.set_focus(field)
            field.insert_text_at_cursor(event.character)
        elif event.key == "enter":
            event.stop()
            self.dismiss(field.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
