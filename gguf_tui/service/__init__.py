"""The engine as a per-user background service: Unix socket server, client, start on demand.

Clients use `connect_or_start` and then only the engine interface (gguf_tui.engine.api).
"""
