"""gguf-tui: a terminal dashboard and CLI for a GGUF model store."""

import os as _os

__version__ = "0.1.0"

# aiohttp's C response parser copies every body chunk into a new bytes object while holding the
# GIL; its pure-Python parser hands the received chunk through untouched. For a download tool
# that is one memcpy of the whole file less on the event loop (about 0.5 s of the loop's time on
# a 2 GiB download, measured with py-spy --gil). aiohttp reads this switch when it is first
# imported, so it is set here, before any module of ours imports aiohttp; an explicit
# AIOHTTP_NO_EXTENSIONS= (empty) in the environment still selects the C parser.
_os.environ.setdefault("AIOHTTP_NO_EXTENSIONS", "1")
