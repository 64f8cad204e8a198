"""What this box has: nvidia-smi output, NVML, AMD sysfs, /proc/meminfo and stated devices."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gguf_tui.fit.devices import (
    DeviceSpecError,
    detect,
    parse_meminfo,
    parse_nvidia_smi,
    parse_stated,
    read_amd_sysfs,
)

MIB = 1024 * 1024
ONE_GPU = "NVIDIA H100 80GB HBM3, 81559, 80936, 0\n"
SEVERAL_GPUS = (
    "NVIDIA GeForce RTX 4090, 24564, 23101, 0\n"
    "NVIDIA GeForce RTX 3090, 24576, 24237, 1\n"
    "NVIDIA RTX A6000, 49140, 1200, 2\n"
)
NO_GPU = "No devices were found\n"
NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure "
    "that the latest NVIDIA driver is installed and running.\n"
)
MEMINFO = """MemTotal:       131841236 kB
MemFree:         2079780 kB
MemAvailable:   120358840 kB
Buffers:          512344 kB
"""


def test_nvidia_smi_one_gpu() -> None:
    [gpu] = parse_nvidia_smi(ONE_GPU)
    assert gpu.name == "NVIDIA H100 80GB HBM3" and gpu.index == 0
    assert gpu.total_bytes == 81559 * MIB and gpu.free_bytes == 80936 * MIB


def test_nvidia_smi_several_gpus() -> None:
    gpus = parse_nvidia_smi(SEVERAL_GPUS)
    assert [g.index for g in gpus] == [0, 1, 2]
    assert gpus[2].name == "NVIDIA RTX A6000" and gpus[2].free_bytes == 1200 * MIB


def test_nvidia_smi_no_gpu_and_unreadable_rows() -> None:
    assert parse_nvidia_smi(NO_GPU) == []
    assert parse_nvidia_smi("NVIDIA A100, [N/A], [N/A], 0\n") == []


def test_meminfo() -> None:
    ram = parse_meminfo(MEMINFO)
    assert ram is not None
    assert ram.total_bytes == 131841236 * 1024 and ram.free_bytes == 120358840 * 1024


def _fake_sysfs(root: Path, cards: dict[str, tuple[int, int] | None]) -> Path:
    drm = root / "drm"
    for name, vram in cards.items():
        device = drm / name / "device"
        device.mkdir(parents=True)
        if vram is not None:
            (device / "mem_info_vram_total").write_text(f"{vram[0]}\n")
            (device / "mem_info_vram_used").write_text(f"{vram[1]}\n")
    (drm / "card0-DP-1").mkdir()  # connectors are not cards
    return drm


def test_amd_sysfs_tree(tmp_path: Path) -> None:
    drm = _fake_sysfs(tmp_path, {"card0": None, "card1": (25753026560, 1073741824),
                                 "card10": (17163091968, 0)})  # fmt: skip
    (drm / "card1" / "device" / "product_name").write_text("Radeon RX 7900 XTX\n")
    gpus = read_amd_sysfs(drm)
    assert [g.name for g in gpus] == ["Radeon RX 7900 XTX", "AMD GPU (card10)"]
    assert gpus[0].free_bytes == 25753026560 - 1073741824 and gpus[1].index == 1
    assert read_amd_sysfs(tmp_path / "missing") == []


def _fake_nvidia_smi(bin_dir: Path, stdout: str, code: int = 0) -> str:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{stdout}EOF\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _probe(tmp_path: Path, **kwargs):
    defaults = dict(environ={}, drm_root=tmp_path / "no-drm", meminfo=tmp_path / "meminfo")
    (tmp_path / "meminfo").write_text(MEMINFO)
    return detect(**{**defaults, **kwargs})


def test_nvml_absent_falls_back_to_nvidia_smi(tmp_path: Path) -> None:
    smi = _fake_nvidia_smi(tmp_path / "bin", SEVERAL_GPUS)
    inventory = _probe(tmp_path, nvml=None, nvidia_smi=smi)
    assert inventory.sources == ["nvidia-smi", "/proc/meminfo"]
    assert len(inventory.gpus) == 3 and inventory.notices == []


class _BrokenNVML:
    """An NVML binding whose driver answers with an error (as after a driver update)."""

    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_DRIVER_NOT_LOADED = 9

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__("Driver/library version mismatch" if value == 18 else "not found")
            self.value = value

    def __init__(self, code: int) -> None:
        self.code = code

    def nvmlInit(self) -> None:
        raise self.NVMLError(self.code)


def test_nvml_failing_gives_one_notice_and_falls_back(tmp_path: Path) -> None:
    smi = _fake_nvidia_smi(tmp_path / "bin", ONE_GPU)
    inventory = _probe(tmp_path, nvml=_BrokenNVML(18), nvidia_smi=smi)
    assert inventory.sources[0] == "nvidia-smi" and len(inventory.gpus) == 1
    assert inventory.notices == ["NVML failed (Driver/library version mismatch); trying nvidia-smi"]


def test_the_real_nvml_binding_without_a_driver_is_quiet(tmp_path: Path) -> None:
    """pynvml is installed here; on a box without the NVIDIA driver it says library not found."""
    pynvml = pytest.importorskip("pynvml")
    if Path("/proc/driver/nvidia").exists():
        pytest.skip("this box has an NVIDIA driver")
    inventory = _probe(tmp_path, nvml=pynvml, nvidia_smi=str(tmp_path / "no-such-nvidia-smi"))
    assert inventory.gpus == [] and inventory.notices == []
    assert inventory.sources == ["/proc/meminfo"]


def test_no_gpu_is_a_normal_answer(tmp_path: Path) -> None:
    smi = _fake_nvidia_smi(tmp_path / "bin", NO_GPU, code=6)
    inventory = _probe(tmp_path, nvml=None, nvidia_smi=smi)
    assert inventory.gpus == [] and inventory.notices == []


def test_broken_driver_is_one_notice(tmp_path: Path) -> None:
    smi = _fake_nvidia_smi(tmp_path / "bin", NO_DRIVER, code=9)
    inventory = _probe(tmp_path, nvml=None, nvidia_smi=smi)
    assert inventory.gpus == []
    assert len(inventory.notices) == 1 and inventory.notices[0].startswith("nvidia-smi failed: ")


def test_nvidia_and_amd_together_are_numbered_in_order(tmp_path: Path) -> None:
    smi = _fake_nvidia_smi(tmp_path / "bin", ONE_GPU)
    drm = _fake_sysfs(tmp_path, {"card1": (17163091968, 0)})
    inventory = _probe(tmp_path, nvml=None, nvidia_smi=smi, drm_root=drm)
    assert [(g.vendor, g.index) for g in inventory.gpus] == [("nvidia", 0), ("amd", 1)]
    assert inventory.sources == ["nvidia-smi", "sysfs", "/proc/meminfo"]


def test_gpus_stated_by_hand(tmp_path: Path) -> None:
    inventory = _probe(tmp_path, environ={"GGUF_TUI_GPUS": "24G, 24G"}, nvml=None)
    assert [g.total_bytes for g in inventory.gpus] == [24 << 30, 24 << 30]
    assert inventory.sources[0] == "GGUF_TUI_GPUS"
    from_config = _probe(tmp_path, stated="80G", nvml=None)
    assert from_config.sources[0] == "config fit.gpus" and from_config.gpus[0].free_bytes == 80 << 30


@pytest.mark.parametrize("text", ["", "24Q", "0", ",".join(["1G"] * 65)])
def test_bad_stated_devices_are_refused(text: str) -> None:
    with pytest.raises(DeviceSpecError):
        parse_stated(text)
