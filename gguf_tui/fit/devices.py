"""What memory this box has: NVIDIA GPUs (NVML, else nvidia-smi), AMD GPUs (sysfs), system RAM.

No GPU is a normal answer, not an error. A driver that is installed but broken gives one notice
and the probe goes on with the next source. `GGUF_TUI_GPUS` (or `fit.gpus` in the config), e.g.
`24G,24G`, replaces the probe with devices stated by hand, for planning a box one does not have.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gguf_tui.units import parse_size

GPUS_ENV = "GGUF_TUI_GPUS"
NVIDIA_SMI_QUERY = (
    "--query-gpu=name,memory.total,memory.free,index",
    "--format=csv,noheader,nounits",
)
NVIDIA_SMI_TIMEOUT = 10.0  # seconds; a hung driver must not hang the command
MAX_STATED_GPUS = 64
_MIB = 1024 * 1024
_CARD_RE = re.compile(r"card\d+$")
# NVML errors that mean "no NVIDIA driver here" (quiet) rather than "a driver, but broken".
_NVML_ABSENT = {"NVML_ERROR_LIBRARY_NOT_FOUND", "NVML_ERROR_DRIVER_NOT_LOADED"}


@dataclass(frozen=True)
class Device:
    """One memory pool a model can be placed in: a GPU, or the system RAM."""

    kind: str  # "gpu" or "ram"
    name: str
    total_bytes: int
    free_bytes: int
    index: int | None = None
    vendor: str = ""  # "nvidia", "amd", "stated" or "system"

    @property
    def label(self) -> str:
        return f"GPU{self.index}" if self.kind == "gpu" and self.index is not None else self.name

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Inventory:
    """Every device found, the sources that answered, and notices for sources that failed."""

    gpus: list[Device] = field(default_factory=list)
    ram: Device | None = None
    sources: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "gpus": [gpu.to_json() for gpu in self.gpus],
            "ram": self.ram.to_json() if self.ram else None,
            "sources": list(self.sources),
            "notices": list(self.notices),
        }


class DeviceSpecError(ValueError):
    """A hand-stated device list (`GGUF_TUI_GPUS`, `fit.gpus`) that cannot be read."""


# ---- parsers (pure: tested against captured output) ------------------------------------------


def parse_nvidia_smi(text: str) -> list[Device]:
    """GPUs from `nvidia-smi --query-gpu=name,memory.total,memory.free,index` CSV (MiB)."""
    gpus = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.rsplit(",", 3)]
        if len(cells) != 4:
            continue  # "No devices were found" and other prose
        name, total, free, index = cells
        try:
            total_mib, free_mib, gpu_index = int(float(total)), int(float(free)), int(index)
        except ValueError:
            continue  # "[N/A]" for a GPU that does not report memory
        gpus.append(Device("gpu", name, total_mib * _MIB, free_mib * _MIB, gpu_index, "nvidia"))
    return gpus


def parse_stated(text: str) -> list[Device]:
    """GPUs stated by hand: sizes separated by commas, e.g. `24G,24G` (each wholly free)."""
    sizes = [part.strip() for part in text.split(",") if part.strip()]
    if not sizes:
        raise DeviceSpecError(f"no GPU sizes in {text!r} (expected e.g. 24G,24G)")
    if len(sizes) > MAX_STATED_GPUS:
        raise DeviceSpecError(f"{len(sizes)} GPUs stated; at most {MAX_STATED_GPUS}")
    gpus = []
    for index, size in enumerate(sizes):
        try:
            total = parse_size(size)
        except ValueError:
            raise DeviceSpecError(f"not a size: {size!r} (expected e.g. 24G,24G)") from None
        if total <= 0:
            raise DeviceSpecError(f"a GPU of {size!r} holds nothing (expected e.g. 24G)")
        gpus.append(Device("gpu", f"stated {size}", total, total, index, "stated"))
    return gpus


def parse_meminfo(text: str) -> Device | None:
    """System RAM from /proc/meminfo: MemTotal, and MemAvailable as what is free to use."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        number = rest.split()
        if number and number[0].isdigit():
            values[key.strip()] = int(number[0]) * 1024  # the file says kB and means KiB
    total = values.get("MemTotal")
    if not total:
        return None
    free = values.get("MemAvailable", values.get("MemFree", 0))
    return Device("ram", "RAM", total, min(free, total), None, "system")


# ---- probes ----------------------------------------------------------------------------------


def read_amd_sysfs(drm_root: Path = Path("/sys/class/drm")) -> list[Device]:
    """AMD GPUs from `card*/device/mem_info_vram_{total,used}` (amdgpu's sysfs files)."""
    gpus: list[Device] = []
    try:
        cards = sorted((p for p in drm_root.iterdir() if _CARD_RE.match(p.name)),
                       key=lambda p: int(p.name[4:]))  # fmt: skip
    except OSError:
        return gpus
    for card in cards:
        device = card / "device"
        try:
            total = int((device / "mem_info_vram_total").read_text().strip())
            used = int((device / "mem_info_vram_used").read_text().strip())
        except (OSError, ValueError):
            continue  # not an amdgpu card (NVIDIA and Intel cards have no such files)
        name = _read_text(device / "product_name") or f"AMD GPU ({card.name})"
        gpus.append(Device("gpu", name, total, max(0, total - used), len(gpus), "amd"))
    return gpus


def read_meminfo(path: Path = Path("/proc/meminfo")) -> Device | None:
    text = _read_text(path)
    return parse_meminfo(text) if text else None


def read_nvml(nvml: Any) -> list[Device]:
    """NVIDIA GPUs through NVML (`nvidia-ml-py`); raises the module's NVMLError on failure."""
    nvml.nvmlInit()
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(Device("gpu", str(name), int(memory.total), int(memory.free), index, "nvidia"))
        return gpus
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down a broken library is best effort
            pass


def run_nvidia_smi(command: str = "nvidia-smi") -> tuple[list[Device] | None, str | None]:
    """(GPUs, None), or (None, None) when nvidia-smi is not installed, or (None, notice)."""
    try:
        done = subprocess.run(
            [command, *NVIDIA_SMI_QUERY], capture_output=True, text=True,
            timeout=NVIDIA_SMI_TIMEOUT, errors="replace",
        )  # fmt: skip
    except FileNotFoundError:
        return None, None
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nvidia-smi did not answer: {type(exc).__name__}"
    gpus = parse_nvidia_smi(done.stdout)
    if done.returncode != 0 and not gpus:
        said = (done.stdout + done.stderr).strip()
        if "no devices were found" in said.lower():
            return [], None
        first = said.splitlines()[0] if said else f"exit status {done.returncode}"
        return None, f"nvidia-smi failed: {first[:200]}"
    return gpus, None


def _load_nvml() -> Any | None:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    return pynvml


_DEFAULT = object()


def detect(
    *,
    stated: str | None = None,
    environ: dict[str, str] | None = None,
    nvml: Any = _DEFAULT,
    nvidia_smi: str = "nvidia-smi",
    drm_root: Path = Path("/sys/class/drm"),
    meminfo: Path = Path("/proc/meminfo"),
) -> Inventory:
    """Probe the devices. `stated` (the config's `fit.gpus`) or `GGUF_TUI_GPUS` skip the GPU
    probe; `nvml` None means the binding is not installed. Raises DeviceSpecError only for a
    stated list that cannot be read (a usage error)."""
    env = os.environ if environ is None else environ
    inventory = Inventory(ram=read_meminfo(meminfo))
    ram_source = ["/proc/meminfo"] if inventory.ram is not None else []
    by_hand = env.get(GPUS_ENV) or stated
    if by_hand:
        inventory.gpus = parse_stated(by_hand)
        inventory.sources = [GPUS_ENV if env.get(GPUS_ENV) else "config fit.gpus", *ram_source]
        return inventory
    nvidia, nvidia_source = _probe_nvidia(
        inventory, _load_nvml() if nvml is _DEFAULT else nvml, nvidia_smi
    )
    amd = read_amd_sysfs(drm_root)
    gpu_sources = [nvidia_source] if nvidia_source else []
    gpu_sources += ["sysfs"] if amd else []
    inventory.sources = [*gpu_sources, *ram_source]
    for index, gpu in enumerate(nvidia + amd):
        inventory.gpus.append(Device(gpu.kind, gpu.name, gpu.total_bytes, gpu.free_bytes, index,
                                     gpu.vendor))  # fmt: skip
    return inventory


def _probe_nvidia(inventory: Inventory, nvml: Any, nvidia_smi: str) -> tuple[list[Device], str | None]:
    """NVML first (exact, no subprocess); nvidia-smi when the binding is missing or fails."""
    if nvml is not None:
        try:
            return read_nvml(nvml), "nvml"
        except Exception as exc:  # noqa: BLE001 - any NVML failure falls back to nvidia-smi
            if _nvml_error_name(nvml, exc) not in _NVML_ABSENT:
                inventory.notices.append(f"NVML failed ({_describe(exc)}); trying nvidia-smi")
    gpus, notice = run_nvidia_smi(nvidia_smi)
    if notice:
        inventory.notices.append(notice)
    if gpus is None:
        return [], None
    return gpus, "nvidia-smi"


def _nvml_error_name(nvml: Any, exc: Exception) -> str:
    value = getattr(exc, "value", None)
    for name in _NVML_ABSENT:
        if value is not None and getattr(nvml, name, object()) == value:
            return name
    return ""


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None
