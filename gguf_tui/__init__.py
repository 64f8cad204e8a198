"""gguf-tui: a terminal dashboard and CLI for a GGUF model store."""

__version__ = "0.1.0"
