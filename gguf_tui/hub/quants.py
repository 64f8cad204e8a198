"""Quantisation names in GGUF file names, split parts, and grouping a repo's files.

Pure functions: no I/O, easy to test. Names are matched case-insensitively and reported in
upper case (`model.q4_k_m.gguf` -> `Q4_K_M`).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import replace

from gguf_tui.hub.models import HubFile, QuantGroup
from gguf_tui.hub.paths import local_file_name, local_sub_path
from gguf_tui.textsafe import plain

DEFAULT_QUANT = "Q4_K_M"

# Approximate bits per weight: used to order quants and to find the closest one available.
QUANT_BITS: dict[str, float] = {
    "IQ1_S": 1.56, "IQ1_M": 1.75, "TQ1_0": 1.69, "TQ2_0": 2.06,
    "IQ2_XXS": 2.06, "IQ2_XS": 2.31, "IQ2_S": 2.5, "IQ2_M": 2.7,
    "Q2_K_S": 2.9, "Q2_K": 3.0, "Q2_K_L": 3.1, "Q2_K_XL": 3.2,
    "IQ3_XXS": 3.06, "IQ3_XS": 3.3, "IQ3_S": 3.44, "IQ3_M": 3.66,
    "Q3_K_S": 3.5, "Q3_K_M": 3.91, "Q3_K_L": 4.27, "Q3_K_XL": 4.3,
    "IQ4_XS": 4.25, "IQ4_NL": 4.5, "MXFP4": 4.25, "MXFP4_MOE": 4.25,
    "Q4_0": 4.5, "Q4_0_4_4": 4.5, "Q4_0_4_8": 4.5, "Q4_0_8_8": 4.5,
    "Q4_K_S": 4.58, "Q4_K_M": 4.89, "Q4_1": 5.0, "Q4_K_L": 5.0, "Q4_K_XL": 5.0,
    "Q5_0": 5.5, "Q5_K_S": 5.54, "Q5_K_M": 5.69, "Q5_K_L": 5.8, "Q5_K_XL": 5.85, "Q5_1": 6.0,
    "Q6_K": 6.56, "Q6_K_L": 6.6, "Q6_K_XL": 6.7,
    "Q8_0": 8.5, "Q8_K_XL": 8.6, "Q8_1": 9.0,
    "BF16": 16.0, "F16": 16.0, "F32": 32.0,
}  # fmt: skip

_QUANT_CORE = (
    r"IQ[1-4]_(?:XXS|XS|NL|S|M|L)"
    r"|Q[1-8]_K(?:_(?:XXL|XL|S|M|L))?"
    r"|Q[1-8]_[01](?:_[48]_[48])?"
    r"|TQ[12]_0"
    r"|MXFP4(?:_MOE)?"
    r"|BF16|FP16|FP32|F16|F32"
)
# A quant is delimited by start/end or one of '-', '_', '.', '/' on both sides.
_QUANT_RE = re.compile(
    rf"(?:(?<=[-_./])|^)(?P<ud>UD-)?(?P<quant>{_QUANT_CORE})(?=[-_./]|$)", re.IGNORECASE
)
_SPLIT_RE = re.compile(r"-(?P<index>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)


def normalise_quant(text: str) -> str:
    quant = text.strip().upper()
    return {"FP16": "F16", "FP32": "F32"}.get(quant, quant)


def parse_quant(file_name: str) -> str | None:
    """The quant a file name announces (the last one in the name), e.g. 'Q4_K_M'; else None.

    Unsloth's dynamic quants keep their prefix ('UD-Q4_K_XL') since they differ from plain ones.
    """
    folders, _, name = plain(file_name).rpartition("/")
    stem = re.sub(r"\.gguf$", "", _SPLIT_RE.sub(".gguf", name), flags=re.IGNORECASE)
    # The file name decides; a folder name ('Q4_K_M/model-00001-of-00002.gguf') is the fallback.
    matches = list(_QUANT_RE.finditer(stem)) or [
        m for folder in folders.split("/") for m in _QUANT_RE.finditer(folder)
    ]
    if not matches:
        return None
    last = matches[-1]
    quant = normalise_quant(last.group("quant"))
    return f"UD-{quant}" if last.group("ud") else quant


def parse_split(file_name: str) -> tuple[int, int] | None:
    """(index, total) for a llama.cpp split part named '...-00001-of-00003.gguf'."""
    match = _SPLIT_RE.search(file_name)
    if not match:
        return None
    index, total = int(match.group("index")), int(match.group("total"))
    if total < 1 or not 1 <= index <= total:
        return None
    return index, total


def is_gguf(path: str) -> bool:
    return path.lower().endswith(".gguf")


def is_mmproj(path: str) -> bool:
    return "mmproj" in path.rsplit("/", 1)[-1].lower()


def quant_bits(quant: str) -> float:
    """Approximate bits per weight; unknown names are estimated from their digit."""
    base = quant.upper().removeprefix("UD-")
    if base in QUANT_BITS:
        return QUANT_BITS[base] + (0.05 if quant.upper().startswith("UD-") else 0.0)
    match = re.search(r"(\d+)", base)
    return float(match.group(1)) + 0.5 if match else 99.0


def closest_quant(wanted: str, available: Iterable[str]) -> str | None:
    """The available quant nearest to `wanted` in bits per weight (ties: the smaller one)."""
    choices = sorted(set(available))
    if not choices:
        return None
    target = quant_bits(wanted)
    return min(choices, key=lambda q: (abs(quant_bits(q) - target), quant_bits(q), q))


def annotate(path: str, size: int | None, sha256: str | None, *, lfs: bool) -> HubFile:
    """A HubFile with quant, split and mmproj facts parsed from its name (local_name unset)."""
    split = parse_split(path)
    return HubFile(
        path=path,
        size=size,
        sha256=sha256,
        local_name=local_file_name(path),
        quant=parse_quant(path),
        part=split[0] if split else None,
        part_total=split[1] if split else None,
        is_mmproj=is_mmproj(path),
        lfs=lfs,
    )


def assign_local_names(files: list[HubFile]) -> list[HubFile]:
    """Give every file its store name: the safe base name, or a safe sub-path on a clash.

    Files are stored flat under `<owner>/<repo>/` (split parts must sit side by side for
    llama.cpp, and LM Studio reads that layout). Only when two files in the repo would get the
    same base name do they keep their folders, so neither overwrites the other.
    """
    counts = Counter(local_file_name(f.path).lower() for f in files)
    named = []
    for hub_file in files:
        if counts[local_file_name(hub_file.path).lower()] > 1:
            local = local_sub_path(hub_file.path)
        else:
            local = local_file_name(hub_file.path)
        named.append(replace(hub_file, local_name=local))
    return named


def _group_key(hub_file: HubFile) -> tuple[str, str, int]:
    """Files of one split share folder, prefix and part total; single files are their own key."""
    if hub_file.part is None:
        return (hub_file.path, "", 1)
    prefix = _SPLIT_RE.sub("", hub_file.path)
    return (prefix.lower(), "split", hub_file.part_total or 1)


def group_files(files: Iterable[HubFile]) -> tuple[list[QuantGroup], list[QuantGroup]]:
    """Group model GGUF files (mmproj excluded) into (quant groups, groups without a quant).

    Split parts become ONE group with the summed size of the parts present; a group with a
    missing part is marked incomplete. Quant groups are ordered by size, then by quant rank.
    """
    buckets: dict[tuple[str, str, int], list[HubFile]] = defaultdict(list)
    for hub_file in files:
        if hub_file.is_mmproj or not is_gguf(hub_file.path):
            continue
        buckets[_group_key(hub_file)].append(hub_file)
    quants: list[QuantGroup] = []
    other: list[QuantGroup] = []
    for (_, kind, total), members in buckets.items():
        members.sort(key=lambda f: f.part or 0)
        if kind == "split":
            present = {f.part for f in members}
            missing = tuple(i for i in range(1, total + 1) if i not in present)
        else:
            missing = ()
        quant = next((f.quant for f in members if f.quant), None)
        group = QuantGroup(
            quant=quant,
            name=members[0].name,
            files=tuple(members),
            total_size=sum(f.size or 0 for f in members),
            part_count=total,
            complete=not missing and all(f.size is not None for f in members),
            missing_parts=missing,
        )
        (quants if quant else other).append(group)
    quants.sort(key=lambda g: (g.total_size, quant_bits(g.quant or ""), g.name))
    other.sort(key=lambda g: g.name)
    return quants, other


def pick_mmproj(mmprojs: list[HubFile], prefer: str = "F16") -> HubFile | None:
    """The projector to ship with a model: `prefer`, then F16, BF16, F32, else the most precise."""
    if not mmprojs:
        return None
    order = [normalise_quant(prefer), "F16", "BF16", "F32"]
    for wanted in order:
        for hub_file in mmprojs:
            if hub_file.quant == wanted:
                return hub_file
    return max(mmprojs, key=lambda f: (quant_bits(f.quant) if f.quant else 0.0, f.size or 0))
