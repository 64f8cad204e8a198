from gguf_tui.cli import entry

entry()
