"""The `ui` settings checked before the dashboard opens: keymap ids and the theme.

`config.py` knows only the shape of these values; which binding ids and theme names exist is
known here, next to the keys and the themes (both need Textual). An unknown id or theme name,
or a theme file or folder that does not exist, is a config error (exit 2, with a close match),
raised before the app starts. A theme file that exists but is broken is reported in the
dashboard and skipped, never fatal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from textual.theme import BUILTIN_THEMES as TEXTUAL_THEMES
from textual.theme import Theme

from gguf_tui.config import Config, ConfigError, did_you_mean
from gguf_tui.textsafe import plain
from gguf_tui.tui import keys
from gguf_tui.tui.theming import DEFAULT_THEME, ThemeFileError, load_theme_file, load_themes
from gguf_tui.tui.uistate import remembered_theme


@dataclass
class UiSetup:
    themes: list[Theme]  # to register, besides Textual's built-ins
    theme: str  # the one to show at start
    keymap: dict[str, str]
    theme_from_config: bool  # ui.theme chose it (a palette choice then lasts one session)
    notes: list[str] = field(default_factory=list)  # shown as warnings once the app runs


def _origin(config: Config) -> str:
    return str(config.source) if config.source else "config"


def is_theme_path(value: str) -> bool:
    """`ui.theme` names a YAML file rather than a theme ('~/t.yaml', './mine.yml')."""
    return value.endswith((".yaml", ".yml")) or "/" in value


def check_keymap(config: Config) -> dict[str, str]:
    for binding_id in config.ui.keymap:
        if binding_id not in keys.KEY_IDS:
            hint = did_you_mean(binding_id, sorted(keys.KEY_IDS))
            raise ConfigError(
                f"{_origin(config)}: 'ui.keymap': unknown key id '{plain(binding_id)}'{hint} "
                f"(the help screen, ?, lists every id)"
            )
    return dict(config.ui.keymap)


def ui_setup(config: Config) -> UiSetup:
    """Check `ui.keymap`, `ui.theme` and `ui.theme_dirs`; ConfigError names what is wrong."""
    origin = _origin(config)
    keymap = check_keymap(config)
    for folder in config.ui.theme_dirs:
        if not Path(os.path.expanduser(folder)).is_dir():
            raise ConfigError(f"{origin}: 'ui.theme_dirs': no such folder: {plain(folder)}")
    loaded = load_themes(config.ui.theme_dirs)
    notes = [f"theme file skipped: {problem}" for problem in loaded.problems]
    themes = list(loaded.themes)
    known = {theme.name for theme in themes} | set(TEXTUAL_THEMES)
    wanted = config.ui.theme
    if wanted is None:
        remembered = remembered_theme()
        chosen = remembered if remembered in known else DEFAULT_THEME
        return UiSetup(themes, chosen, keymap, theme_from_config=False, notes=notes)
    if is_theme_path(wanted):
        path = Path(os.path.expanduser(wanted))
        if config.source is not None and not path.is_absolute():
            path = config.source.parent / path
        if not path.is_file():
            raise ConfigError(f"{origin}: 'ui.theme': no such theme file: {plain(wanted)}")
        try:
            theme = load_theme_file(path)
        except ThemeFileError as exc:
            notes.append(f"ui.theme: theme file skipped ({exc}); using {DEFAULT_THEME}")
            return UiSetup(themes, DEFAULT_THEME, keymap, theme_from_config=True, notes=notes)
        return UiSetup([*themes, theme], theme.name, keymap, theme_from_config=True, notes=notes)
    if wanted in known:
        return UiSetup(themes, wanted, keymap, theme_from_config=True, notes=notes)
    if wanted in loaded.broken_names:
        # its file is there but broken: reported (in notes), not fatal
        notes.append(f"ui.theme: the theme '{plain(wanted)}' is in a broken file; using {DEFAULT_THEME}")
        return UiSetup(themes, DEFAULT_THEME, keymap, theme_from_config=True, notes=notes)
    hint = did_you_mean(wanted, sorted(known))
    raise ConfigError(
        f"{origin}: 'ui.theme': no theme named '{plain(wanted)}'{hint} "
        f"(built-in: {', '.join(sorted(t.name for t in loaded.themes))}, and Textual's own)"
    )
