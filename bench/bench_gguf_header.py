"""Time gguf_tui's header reader against llama.cpp's `gguf.GGUFReader` on a 151,936-token vocab.

Run: .venv/bin/python bench/bench_gguf_header.py [--ours N] [--reference N]

Writes one GGUF (Qwen-size vocabulary: tokens, scores, token types, tiny tensors) to a temp
dir, then reads the same facts both ways, alternating, and prints the medians and the ratio.
Both readers see the file in the page cache (it was just written), so this measures parsing,
not the disk.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gguf import GGUFReader  # noqa: E402

from gguf_tui.gguf import quant_name_from_file_type, read_gguf  # noqa: E402
from tests.helpers.ggufgen import QWEN_VOCAB_SIZE, make_vocab_gguf  # noqa: E402


def facts_with_gguf_reader(path: Path) -> dict:
    """The facts `read_gguf` reports, the way a user of gguf-py would get them."""
    reader = GGUFReader(path)

    def scalar(key: str):
        field = reader.get_field(key)
        return None if field is None else field.contents()

    arch = scalar("general.architecture")
    file_type = scalar("general.file_type")
    return {
        "architecture": arch,
        "name": scalar("general.name"),
        "parameter_count": sum(int(t.n_elements) for t in reader.tensors),
        "quantization": quant_name_from_file_type(file_type) if file_type is not None else None,
        "context_length": scalar(f"{arch}.context_length"),
        "tensor_count": len(reader.tensors),
        "tensor_data_offset": reader.data_offset,
    }


def facts_with_ours(path: Path) -> dict:
    info = read_gguf(path)
    return {
        "architecture": info.architecture,
        "name": info.name,
        "parameter_count": info.parameter_count,
        "quantization": info.quantization,
        "context_length": info.context_length,
        "tensor_count": info.tensor_count,
        "tensor_data_offset": info.tensor_data_offset,
    }


def timed(function, path: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    result = function(path)
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", type=int, default=30, help="repetitions of read_gguf")
    parser.add_argument("--reference", type=int, default=5, help="repetitions of GGUFReader")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as tmp:
        path = make_vocab_gguf(Path(tmp) / "Bench-Vocab-Q4_K_M.gguf")
        size_mb = path.stat().st_size / 1e6
        print(f"file: {QWEN_VOCAB_SIZE:,}-token vocabulary, {size_mb:.1f} MB ({path.name})")

        ours_times: list[float] = []
        reference_times: list[float] = []
        ours = reference = None
        # Alternate the two so drift in machine load hits both alike.
        for round_index in range(max(args.ours, args.reference)):
            if round_index < args.reference:
                elapsed, reference = timed(facts_with_gguf_reader, path)
                reference_times.append(elapsed)
            if round_index < args.ours:
                elapsed, ours = timed(facts_with_ours, path)
                ours_times.append(elapsed)

    if ours != reference:
        print(f"MISMATCH\n  ours:      {ours}\n  GGUFReader: {reference}")
        return 1
    ours_median = statistics.median(ours_times)
    reference_median = statistics.median(reference_times)
    print(f"facts agree: {ours}")
    print(
        f"gguf_tui read_gguf : median {ours_median * 1e3:8.2f} ms "
        f"(min {min(ours_times) * 1e3:.2f}, n={len(ours_times)})"
    )
    print(
        f"gguf.GGUFReader    : median {reference_median * 1e3:8.2f} ms "
        f"(min {min(reference_times) * 1e3:.2f}, n={len(reference_times)})"
    )
    ratio = reference_median / ours_median
    print(f"ratio: {ratio:.0f}x faster (target >= 100x)")
    return 0 if ratio >= 100 else 1


if __name__ == "__main__":
    raise SystemExit(main())
