"""YAML configuration: load, validate strictly, apply defaults and precedence.

Precedence: command-line option > environment > config file > default.
Unknown keys and bad values raise ConfigError naming the file, the key and a close match.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import yaml

from gguf_tui.units import parse_duration, parse_size


class ConfigError(Exception):
    """A config file or value is invalid; the CLI exits 2 with this message."""


def read_yaml_file(path: Path, what: str) -> Any:
    """`yaml.safe_load` of a file; ValueError with one line naming the file (and the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ValueError(f"{path}: cannot read {what}: {reason}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ValueError(f"{path}: not valid YAML{where}") from None


def _default_store() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "gguf-tui" / "models"


def default_config_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "gguf-tui" / "config.yaml"


@dataclass
class DownloadsConfig:
    concurrency: int = 2
    connections: int = 8
    retries: int = 5
    checksum_retries: int = 2
    stall_timeout: float = 30.0
    connect_timeout: float = 30.0
    max_rate: int | None = None
    free_space_margin: int = 1024**3
    min_segment_size: int = 32 * 1024**2
    state_save_interval: float = 5.0
    retry_backoff: float = 0.5
    outage_timeout: float = 6 * 3600.0  # seconds of network outage before giving up; 0 = never


@dataclass
class HubConfig:
    endpoint: str = "https://huggingface.co"
    search_limit: int = 50
    prefer_mmproj: str = "F16"
    api_timeout: float = 60.0
    # Tried in order when `endpoint` answers 5xx or cannot be reached; they get the token too.
    fallback_endpoints: list[str] = field(default_factory=list)


@dataclass
class NetworkConfig:
    """How requests leave this box. None: the environment decides (HTTPS_PROXY, NO_PROXY...)."""

    proxy: str | None = None  # a proxy URL, or "none" for direct connections whatever the env says
    no_proxy: list[str] | None = None  # hosts reached directly; replaces NO_PROXY when set


@dataclass
class UIConfig:
    theme: str | None = None  # None: the theme last chosen in the palette, else gguf-dark
    keymap: dict[str, str] = field(default_factory=dict)
    mouse: bool = True
    theme_dirs: list[str] = field(default_factory=list)
    refresh_rate: float = 4.0


@dataclass
class EngineConfig:
    mode: str = "service"  # "service": a per-user background engine; "local": in this process
    idle_exit: float = 600.0  # seconds a service with nothing to do and no client stays up; 0 never
    refresh_rate: float = 4.0  # progress events and lock heartbeats per second per job
    nice: int = 10  # CPU niceness added to the service's process (downloads yield to inference)
    ionice: str = "best-effort"  # I/O class of the service: best-effort (level 7), idle, off


@dataclass
class OtherStoresConfig:
    """Where the other tools keep models (`ls --all`, dedupe, import --from, link --to).

    None: the tool's own default (its environment variable, then its usual folder); a list
    replaces it, and an empty list turns that tool off.
    """

    hf_cache: list[str] | None = None
    llama_cpp: list[str] | None = None
    lmstudio: list[str] | None = None
    ollama: list[str] | None = None


@dataclass
class FitConfig:
    gpus: str | None = None  # devices stated by hand, e.g. "24G,24G"; None: probe this box
    context: int | None = None  # context length for verdicts; None: 8192, or the trained if smaller
    cache_type: str = "f16"  # KV cache type, as llama.cpp's --cache-type-k/-v


@dataclass
class Config:
    store: Path = field(default_factory=_default_store)
    downloads: DownloadsConfig = field(default_factory=DownloadsConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    other_stores: OtherStoresConfig = field(default_factory=OtherStoresConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    # store.shared: the root is made setgid and group-writable for a team's group (README
    # "A shared store on one box"); a root that already is one is shared whatever this says.
    store_shared: bool = False
    source: Path | None = None

    @property
    def hidden_dir(self) -> Path:
        return self.store / ".gguf-tui"


def _int(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be {bound}, got {value}")
        return value

    return check


def _seconds(minimum: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        seconds = parse_duration(value)
        if seconds < minimum:
            raise ValueError(f"must be at least {minimum} seconds, got {value!r}")
        return seconds

    return check


def _size(value: Any) -> int:
    return parse_size(value)


def _optional_rate(value: Any) -> int | None:
    if value is None or value == 0 or value == "0":
        return None
    rate = parse_size(value)
    if rate < 1024:
        raise ValueError(f"rate limit below 1 KiB/s makes no sense: {value!r}")
    return rate


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _optional_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _keymap(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("expected a mapping of action id to keys, e.g. {pause: 'space'}")
    return dict(value)


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of paths")
    return list(value)


def _optional_path_list(value: Any) -> list[str] | None:
    return None if value is None else _str_list(value)


def _url(value: Any) -> str:
    text = _str(value)
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return text.rstrip("/")


def _url_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("expected a list of http(s) URLs")
    return [_url(item) for item in value]


def _proxy(value: Any) -> str:
    """A proxy URL, or "" / "none" (direct); SOCKS and other schemes are refused here."""
    if value is False:  # YAML reads a bare `off`/`no` as false
        return "none"
    if not isinstance(value, str):
        raise ValueError(f"expected a proxy URL like http://HOST:PORT, or none, got {value!r}")
    from gguf_tui.proxies import NO_PROXY_VALUES, Proxy, ProxySettingError

    if value.strip().lower() in NO_PROXY_VALUES:
        return "none"
    try:
        Proxy.parse(value, "network.proxy")
    except ProxySettingError as exc:
        raise ValueError(str(exc).removeprefix("network.proxy: ")) from None
    return value.strip()


def _host_list(value: Any) -> list[str]:
    """NO_PROXY entries, as a list or one comma-separated string."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of host names, domains or CIDR ranges")
    return [v.strip() for v in value if v.strip()]


def _path(value: Any) -> Path:
    return Path(os.path.expanduser(_str(value)))


_SECTIONS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "downloads": {
        "concurrency": _int(1, 64),
        "connections": _int(1, 64),
        "retries": _int(0, 1000),
        "checksum_retries": _int(0, 100),
        "stall_timeout": _seconds(1),
        "connect_timeout": _seconds(1),
        "max_rate": _optional_rate,
        "free_space_margin": _size,
        "min_segment_size": _size,
        "state_save_interval": _seconds(0.1),
        "retry_backoff": _seconds(0.01),
        "outage_timeout": _seconds(0),
    },
    "hub": {
        "endpoint": _url,
        "search_limit": _int(1, 1000),
        "prefer_mmproj": _str,
        "api_timeout": _seconds(1),
        "fallback_endpoints": lambda v: _url_list(v),
    },
    "network": {
        "proxy": lambda v: None if v is None else _proxy(v),
        "no_proxy": lambda v: None if v is None else _host_list(v),
    },
    "ui": {
        "theme": _optional_str,
        "keymap": _keymap,
        "mouse": _bool,
        "theme_dirs": _str_list,
        "refresh_rate": lambda v: float(_int(1, 30)(v)),
    },
    "engine": {
        "mode": _choice("service", "local"),
        "idle_exit": _seconds(0),
        "refresh_rate": lambda v: float(_int(1, 30)(v)),
        "nice": _int(0, 19),
        # YAML reads a bare `off` as false: both mean off.
        "ionice": lambda v: "off" if v is False else _choice("best-effort", "idle", "off")(v),
    },
    "other_stores": {
        "hf_cache": _optional_path_list,
        "llama_cpp": _optional_path_list,
        "lmstudio": _optional_path_list,
        "ollama": _optional_path_list,
    },
    "fit": {
        "gpus": lambda v: None if v is None else _stated_gpus(v),
        "context": lambda v: None if v is None else _int(256, 1 << 24)(v),
        "cache_type": lambda v: _cache_type(v),
    },
}
_STORE_KEYS = ("path", "shared")


def _store_setting(value: Any) -> tuple[Path | None, bool | None]:
    """`store: DIR`, or `store: {path: DIR, shared: BOOL}` (either key may be left out)."""
    if not isinstance(value, dict):
        return _path(value), None
    for key in value:
        if key not in _STORE_KEYS:
            raise KeyError(f"unknown key 'store.{key}'{did_you_mean(str(key), list(_STORE_KEYS))}")
    path = _path(value["path"]) if value.get("path") is not None else None
    shared = _bool(value["shared"]) if "shared" in value else None
    return path, shared


def _set_store(config: Config, value: Any) -> None:
    path, shared = _store_setting(value)
    if path is not None:
        config.store = path
    if shared is not None:
        config.store_shared = shared


_TOP_LEVEL = {"store": _set_store}


def _stated_gpus(value: Any) -> str:
    from gguf_tui.fit.devices import DeviceSpecError, parse_stated

    text = str(value)
    try:
        parse_stated(text)
    except DeviceSpecError as exc:
        raise ValueError(str(exc)) from None
    return text


def _cache_type(value: Any) -> str:
    from gguf_tui.fit.shape import cache_type

    return cache_type(_str(value)).name


def did_you_mean(key: str, choices: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _apply(config: Config, raw: dict[str, Any], origin: str) -> None:
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ConfigError(f"{origin}: key {key!r} is not a string")
        if key in _TOP_LEVEL:
            try:
                _TOP_LEVEL[key](config, value)
            except KeyError as exc:
                raise ConfigError(f"{origin}: {exc.args[0]}") from None
            except ValueError as exc:
                raise ConfigError(f"{origin}: '{key}': {exc}") from None
            continue
        if key not in _SECTIONS:
            choices = list(_TOP_LEVEL) + list(_SECTIONS)
            raise ConfigError(f"{origin}: unknown key '{key}'{did_you_mean(key, choices)}")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: '{key}' must be a mapping of settings")
        section = getattr(config, key)
        validators = _SECTIONS[key]
        for sub_key, sub_value in value.items():
            dotted = f"{key}.{sub_key}"
            if sub_key not in validators:
                choices = list(validators)
                raise ConfigError(
                    f"{origin}: unknown key '{dotted}'{did_you_mean(str(sub_key), choices)}"
                )
            try:
                setattr(section, sub_key, validators[sub_key](sub_value))
            except ValueError as exc:
                raise ConfigError(f"{origin}: '{dotted}': {exc}") from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    store: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Load the config: defaults, then the file, then environment, then explicit options."""
    env = os.environ if environ is None else environ
    config = Config()
    explicit = path is not None or bool(env.get("GGUF_TUI_CONFIG"))
    config_path = Path(path or env.get("GGUF_TUI_CONFIG") or default_config_path())
    if config_path.exists() or explicit:
        try:
            raw = read_yaml_file(config_path, "config file")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if raw is not None:
            if not isinstance(raw, dict):
                raise ConfigError(f"{config_path}: the top level must be a mapping of settings")
            _apply(config, raw, str(config_path))
        config.source = config_path
    if env.get("GGUF_TUI_STORE"):
        config.store = Path(os.path.expanduser(env["GGUF_TUI_STORE"]))
    if env.get("HF_ENDPOINT"):
        try:
            config.hub.endpoint = _url(env["HF_ENDPOINT"])
        except ValueError as exc:
            raise ConfigError(f"HF_ENDPOINT: {exc}") from None
    if store is not None:
        config.store = Path(os.path.expanduser(str(store)))
    config.store = config.store.absolute()
    _check_proxy_environment(config, env)
    return config


def _check_proxy_environment(config: Config, env: Any) -> None:
    """A proxy variable we would use but cannot (socks://, no host) is a usage error now, not a
    puzzling network failure later."""
    from gguf_tui.proxies import ProxyRoutes, ProxySettingError

    try:
        ProxyRoutes.from_config(config, env)
    except ProxySettingError as exc:
        raise ConfigError(str(exc)) from None


def config_field_names() -> dict[str, list[str]]:
    """Every documented key, for tests that check config.example.yaml covers them all."""
    names = {"": list(_TOP_LEVEL), "store": list(_STORE_KEYS)}
    for section_name, cls in (("downloads", DownloadsConfig), ("hub", HubConfig), ("ui", UIConfig),
                              ("engine", EngineConfig), ("other_stores", OtherStoresConfig),
                              ("fit", FitConfig), ("network", NetworkConfig)):
        names[section_name] = [f.name for f in fields(cls)]
    return names
