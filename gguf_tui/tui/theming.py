"""Themes: the built-in gguf-dark and gguf-light, plus YAML theme files turned into `Theme`s.

YAML themes are read from the `themes/` folder shipped with the program (the top-level
`themes/` of a checkout, installed as package data), from `~/.config/gguf-tui/themes` and from
the folders in `ui.theme_dirs`. A broken file is reported and skipped, never fatal.

App colour variables name the download states (`$download-active`, ...). Their defaults come
from `STATE_VARIABLE_DEFAULTS` (via `App.get_theme_variable_defaults`), so every Textual
built-in theme works too; a theme file may override any of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.color import ColorSystem
from textual.color import Color, ColorParseError
from textual.theme import Theme

from gguf_tui.config import did_you_mean, read_yaml_file

DEFAULT_THEME = "gguf-dark"
PACKAGED_THEMES_DIR = Path(__file__).resolve().parent / "themes"

STATE_VARIABLE_DEFAULTS: dict[str, str] = {
    "download-queued": "#8a8f98",
    "download-active": "#5fafff",
    "download-paused": "#d7af5f",
    "download-verifying": "#af87ff",
    "download-done": "#5fd787",
    "download-failed": "#ff5f5f",
    "download-retrying": "#ff875f",
    "download-elsewhere": "#87afaf",
    "space-short": "#ff5f5f",
}

# Colour variables a theme may set; left out, the app computes them (`pane_border`).
COMPUTED_COLOUR_VARIABLES = ("pane-border",)

GGUF_DARK = Theme(
    name="gguf-dark",
    primary="#5fafff",
    secondary="#87afaf",
    accent="#d7af5f",
    warning="#d7af5f",
    error="#ff5f5f",
    success="#5fd787",
    foreground="#d8dee9",
    background="#16191d",
    surface="#1e2227",
    panel="#262b31",
    dark=True,
    variables=dict(STATE_VARIABLE_DEFAULTS),
)

GGUF_LIGHT = Theme(
    name="gguf-light",
    primary="#005fa3",
    secondary="#3a6f6f",
    accent="#9a6400",
    warning="#9a6400",
    error="#c0262d",
    success="#1f7a35",
    foreground="#1d2329",
    background="#f7f7f4",
    surface="#ecece7",
    panel="#dfe1dc",
    dark=False,
    variables={
        "download-queued": "#6b7280",
        "download-active": "#005fa3",
        "download-paused": "#9a6400",
        "download-verifying": "#6a3fb5",
        "download-done": "#1f7a35",
        "download-failed": "#c0262d",
        "download-retrying": "#b4480f",
        "download-elsewhere": "#3a6f6f",
        "space-short": "#c0262d",
    },
)

BUILTIN_THEMES = (GGUF_DARK, GGUF_LIGHT)

_COLOUR_KEYS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_ALLOWED_KEYS = {"name", "dark", "luminosity_spread", "text_alpha", "variables", *_COLOUR_KEYS}


class ThemeFileError(Exception):
    """A theme file cannot be used; the message names the file and the problem."""


def user_themes_dir() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "gguf-tui" / "themes"


def theme_dirs(extra: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """Folders searched for YAML themes, later ones overriding earlier names."""
    folders = [PACKAGED_THEMES_DIR, user_themes_dir()]
    folders += [Path(os.path.expanduser(folder)) for folder in extra]
    return folders


def _colour(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ThemeFileError(f"{path}: '{key}' must be a colour string like '#5fafff'")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(f"{path}: '{key}': not a colour: {value!r}") from None
    return value


def theme_from_data(data: Any, path: Path) -> Theme:
    """Validate a parsed YAML theme and build the `Theme`."""
    if not isinstance(data, dict):
        raise ThemeFileError(f"{path}: a theme file must be a mapping of settings")
    unknown = sorted(str(key) for key in data if key not in _ALLOWED_KEYS)
    if unknown:
        hint = did_you_mean(unknown[0], sorted(_ALLOWED_KEYS))
        raise ThemeFileError(f"{path}: unknown key '{unknown[0]}'{hint}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 60:
        raise ThemeFileError(f"{path}: 'name' is required (a short string)")
    if "primary" not in data:
        raise ThemeFileError(f"{path}: 'primary' colour is required")
    colours = {key: _colour(path, key, data[key]) for key in _COLOUR_KEYS if key in data}
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeFileError(f"{path}: 'dark' must be true or false")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ThemeFileError(f"{path}: 'variables' must be a mapping of name to value")
    checked: dict[str, str] = {}
    for key, value in variables.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ThemeFileError(f"{path}: variables must map names to strings")
        is_colour = key in STATE_VARIABLE_DEFAULTS or key in COMPUTED_COLOUR_VARIABLES
        checked[key] = _colour(path, f"variables.{key}", value) if is_colour else value
    extra: dict[str, Any] = {}
    for key in ("luminosity_spread", "text_alpha"):
        if key in data:
            if not isinstance(data[key], (int, float)) or isinstance(data[key], bool):
                raise ThemeFileError(f"{path}: '{key}' must be a number")
            extra[key] = float(data[key])
    return Theme(name=name.strip(), dark=dark, variables=checked, **colours, **extra)


def load_theme_file(path: Path) -> Theme:
    try:
        data = read_yaml_file(path, "theme file")
    except ValueError as exc:
        raise ThemeFileError(str(exc)) from None
    return theme_from_data(data, path)


@dataclass
class ThemeLoad:
    themes: list[Theme]
    problems: list[str]
    broken_names: set[str] = field(default_factory=set)  # names found in files that are broken


def load_themes(extra_dirs: list[str] | tuple[str, ...] = ()) -> ThemeLoad:
    """Built-in themes plus every readable YAML theme; problems are returned, not raised."""
    themes: dict[str, Theme] = {theme.name: theme for theme in BUILTIN_THEMES}
    problems: list[str] = []
    broken: set[str] = set()
    for folder in theme_dirs(extra_dirs):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.y*ml")):
            if path.suffix not in (".yaml", ".yml"):
                continue
            try:
                data = read_yaml_file(path, "theme file")
                theme = theme_from_data(data, path)
            except ValueError as exc:  # unreadable or not YAML
                problems.append(str(exc))
                continue
            except ThemeFileError as exc:
                problems.append(str(exc))
                name = data.get("name") if isinstance(data, dict) else None
                if isinstance(name, str) and name.strip():
                    broken.add(name.strip())
                continue
            themes[theme.name] = theme
    return ThemeLoad(list(themes.values()), problems, broken - set(themes))


def palette_index(colour: Color) -> int | None:
    """The xterm 256-colour index a colour becomes on a 256-colour terminal (as Rich converts)."""
    return colour.rich_color.downgrade(ColorSystem.EIGHT_BIT).number


def pane_border(variables: dict[str, str], dark: bool) -> str:
    """The colour of an unfocused pane's border: visible on the background in every theme.

    Dark themes lighten the panel colour, light themes darken it (Textual's `$panel-lighten-2`
    is whiter than a light background). If a 256-colour terminal would still draw border and
    background alike (tmux often is one), the border moves toward the text colour until the
    two differ. Themes in the terminal's own ANSI palette are left to the terminal.
    """
    base = variables.get("panel-lighten-2" if dark else "panel-darken-2") or variables.get("panel", "")
    try:
        background = Color.parse(variables["background"])
        border = Color.parse(base)
        foreground = Color.parse(variables["foreground"])
    except (KeyError, ColorParseError):
        return base
    if background.ansi is not None or border.ansi is not None or foreground.ansi is not None:
        return base
    target = palette_index(background)
    for step in range(11):
        candidate = border.blend(foreground, step / 10)
        if palette_index(candidate) != target:
            return candidate.hex
    return foreground.hex
