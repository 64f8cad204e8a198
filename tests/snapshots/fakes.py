"""Fixed stand-ins for the engine, the Hub and the store, so screenshots are the same every run.

Each implements only the narrow interface the dashboard uses; the UI tests (tests/ui) run the
real ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gguf_tui.engine import Job
from gguf_tui.engine.api import JobView, ResumeView, Snapshot
from gguf_tui.engine.local import job_view
from gguf_tui.engine.resume import ResumeState
from gguf_tui.engine.spec import FileRequest, JobSpec, JobState
from gguf_tui.gguf import GGUFInfo
from gguf_tui.hub.models import RepoFiles, SearchResult
from gguf_tui.hub.quants import annotate, assign_local_names, group_files
from gguf_tui.store.allstores import AllStores
from gguf_tui.store.dedupe import Copy, DuplicateGroup
from gguf_tui.store.others import OtherFile, OtherModel, OtherStoresSnapshot
from gguf_tui.store.scan import StoreFile, StoreModel, StoreSnapshot
from gguf_tui.store.usage import PartialDownload

NOW = 1_790_000_000.0  # 2026-09-21, a fixed "now" for every age shown
GB = 1_000_000_000
DAY = 86400.0
SHA = "3f9a1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7c2"


def _spec(name: str, repo: str, files: list[tuple[str, int, str]]) -> JobSpec:
    return JobSpec(
        name=name,
        files=[
            FileRequest(
                url=f"https://huggingface.co/{repo}/resolve/abc/{path}",
                dest=f"{repo}/{path}",
                expected_sha256=SHA if role != "mmproj" else None,
                expected_size=size,
                revision="0123456789abcdef0123456789abcdef01234567",
                role=role,
            )
            for path, size, role in files
        ],
        source={
            "kind": "hub",
            "repo": repo,
            "revision": "0123456789abcdef0123456789abcdef01234567",
            "revision_name": "main",
            "endpoint": "https://huggingface.co",
        },
    )


def demo_jobs() -> list[Job]:
    qwen = _spec(
        "bartowski/Qwen3-8B-GGUF:Q4_K_M",
        "bartowski/Qwen3-8B-GGUF",
        [("Qwen3-8B-Q4_K_M.gguf", 4_680_000_000, "model"), ("mmproj-Qwen3-8B-F16.gguf", 610_000_000, "mmproj")],
    )
    mistral = _spec("TheBloke/Mistral-7B-GGUF:Q8_0", "TheBloke/Mistral-7B-GGUF", [("mistral-7b.Q8_0.gguf", 7_700_000_000, "model")])
    llama = _spec(
        "unsloth/Llama-3.3-70B-GGUF:Q4_K_M",
        "unsloth/Llama-3.3-70B-GGUF",
        [(f"Llama-3.3-70B-Q4_K_M-0000{i}-of-00002.gguf", 21_000_000_000, "part") for i in (1, 2)],
    )
    phi = _spec("microsoft/Phi-4-GGUF:Q4_K_M", "microsoft/Phi-4-GGUF", [("phi-4-Q4_K_M.gguf", 9_050_000_000, "model")])
    return [
        Job(1, qwen, JobState.DOWNLOADING, bytes_done=2_116_000_000, total=5_290_000_000, speed=182_000_000, eta=17.4),
        Job(2, mistral, JobState.RETRYING, message="checksum mismatch: download corrupted", bytes_done=7_700_000_000,
            total=7_700_000_000, retry_attempt=1, retry_max=2, retry_reason="checksum mismatch: download corrupted"),
        Job(3, llama, JobState.PAUSED, bytes_done=5_040_000_000, total=42_000_000_000),
        Job(4, phi, JobState.QUEUED, total=9_050_000_000),
    ]


def demo_resume_states() -> dict[int, list[ResumeState]]:
    llama = "unsloth/Llama-3.3-70B-GGUF/Llama-3.3-70B-Q4_K_M-00001-of-00002.gguf"
    return {
        3: [
            ResumeState(
                resume_key="https://huggingface.co/unsloth/Llama-3.3-70B-GGUF/resolve/abc/x@abc",
                dest=llama,
                total_size=21_000_000_000,
                expected_sha256=SHA,
                etag='"3f9a1b2c4d5e"',
                ranges=[[0, 3_000_000_000], [5_250_000_000, 6_500_000_000], [10_500_000_000, 11_290_000_000]],
                saved_at=NOW - 3,
                created_at=NOW - 3600,
            )
        ],
        1: [
            ResumeState(
                resume_key="https://huggingface.co/bartowski/Qwen3-8B-GGUF/resolve/abc/q@abc",
                dest="bartowski/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf",
                total_size=4_680_000_000,
                expected_sha256=SHA,
                etag='"9e8dc27a11"',
                ranges=[[0, 2_116_000_000]],
                saved_at=NOW - 2,
                created_at=NOW - 60,
            )
        ],
    }


def resume_view(state: ResumeState) -> ResumeView:
    return ResumeView(
        bytes_done=state.bytes_done,
        total=state.total_size,
        ranges=tuple((int(start), int(end)) for start, end in state.ranges),
        validator=state.validator,
        saved_at=state.saved_at,
    )


class FakeSubscription:
    """The demo queue as a snapshot, then no events: the picture stays put."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def __aiter__(self) -> FakeSubscription:
        return self

    async def __anext__(self) -> Any:
        await asyncio.Event().wait()
        raise StopAsyncIteration

    async def close(self) -> None:
        return None


class FakeEngine:
    """The engine interface (engine/api.py) over fixed jobs and resume states."""

    def __init__(self, jobs: list[Job] | None = None, states: dict[int, list[ResumeState]] | None = None) -> None:
        self._jobs = {job.id: job for job in (jobs if jobs is not None else demo_jobs())}
        self._states = states if states is not None else demo_resume_states()

    def _view(self, job: Job) -> JobView:
        resume = {state.dest: resume_view(state) for state in self._states.get(job.id, [])}
        return job_view(job, "/store", resume)

    async def snapshot(self) -> Snapshot:
        return Snapshot(0, tuple(self._view(job) for job in self._jobs.values()))

    async def subscribe(self) -> FakeSubscription:
        return FakeSubscription(await self.snapshot())

    async def job(self, job_id: int) -> JobView:
        return self._view(self._jobs[job_id])

    async def close(self) -> None:
        return None


def demo_repo_files() -> RepoFiles:
    raw = [
        ("Qwen3-8B-Q4_K_M.gguf", 4_680_000_000),
        ("Qwen3-8B-Q5_K_M.gguf", 5_850_000_000),
        ("Qwen3-8B-Q8_0.gguf", 8_710_000_000),
        ("mmproj-Qwen3-8B-F16.gguf", 610_000_000),
    ]
    files = assign_local_names([annotate(path, size, SHA, lfs=True) for path, size in raw])
    quants, other = group_files(files)
    return RepoFiles(
        repo="bartowski/Qwen3-8B-GGUF",
        revision="main",
        commit="0123456789abcdef0123456789abcdef01234567",
        quants=quants,
        mmprojs=[f for f in files if f.is_mmproj],
        other=other,
        license="apache-2.0",
    )


def demo_facts() -> GGUFInfo:
    return GGUFInfo(
        version=3, architecture="qwen3", name="Qwen3 8B", parameter_count=8_190_000_000, file_type=15,
        quantization="Q4_K_M", context_length=40960, split_index=None, split_count=None,
        projector_type=None, tensor_count=399, kv_count=36, license="apache-2.0", alignment=32,
        tensor_data_offset=5_000_000,
    )


class FakeHub:
    async def search(self, query: str) -> list[SearchResult]:
        return [
            SearchResult("bartowski/Qwen3-8B-GGUF", downloads=1_200_000, likes=310,
                         last_modified="2026-09-18T07:00:00.000Z"),
            SearchResult("unsloth/Qwen3-32B-GGUF", downloads=880_000, likes=120),
            SearchResult("Qwen/Qwen3-0.6B-GGUF", downloads=95_000, likes=88, gated=True),
        ]

    async def repo_files(self, repo: str) -> RepoFiles:
        return demo_repo_files()

    async def read_gguf_header(self, repo: str, path: str, revision: str) -> tuple[GGUFInfo, int]:
        return demo_facts(), 262144

    def auth_headers_for(self, origin: str) -> dict[str, str]:
        return {}

    async def close(self) -> None:
        return None


def _model(name: str, files: list[tuple[str, int, str]], *, managed: bool = True, quant: str | None = None,
           arch: str | None = None, params: int | None = None, used: float | None = None,
           state: str = "verified") -> StoreModel:
    root = Path("/srv/models")
    store_files = [
        StoreFile(relative=rel, path=root / rel, role=role, size=size, expected_size=size,
                  sha256=SHA if managed else None, verified_at=NOW - 2 * DAY if managed else None,
                  inode=(1, sum(map(ord, rel))), mtime=NOW - 9 * DAY)
        for rel, size, role in files
    ]
    return StoreModel(
        name=name, files=store_files, managed=managed, state=state, quant=quant, architecture=arch,
        parameter_count=params, context_length=131072 if arch else None, added_at=NOW - 9 * DAY if managed else None,
        last_used_at=used, source={"kind": "hub", "repo": name.split(":")[0], "revision": "0123456789abcdef0123456789abcdef01234567",
                                   "revision_name": "main", "endpoint": "https://huggingface.co"} if managed else {},
        license="llama3.1" if managed else None,
    )


def demo_snapshot() -> StoreSnapshot:
    models = [
        _model("bartowski/Llama-3.1-8B-Instruct-GGUF:Q4_K_M",
               [("bartowski/Llama-3.1-8B-Instruct-GGUF/Llama-3.1-8B-Instruct-Q4_K_M.gguf", 4_920_000_000, "model")],
               quant="Q4_K_M", arch="llama", params=8_030_000_000, used=NOW - 2 * DAY),
        _model("google/gemma-3-27b-it-GGUF:Q4_0",
               [("google/gemma-3-27b-it-GGUF/gemma-3-27b-it-q4_0.gguf", 15_600_000_000, "model"),
                ("google/gemma-3-27b-it-GGUF/mmproj-model-f16.gguf", 850_000_000, "mmproj")],
               quant="Q4_0", arch="gemma3", params=27_000_000_000, used=NOW - 40 * DAY),
        _model("mistral-nemo-Q5_K_M", [("mistral-nemo-Q5_K_M.gguf", 8_730_000_000, "model")],
               managed=False, quant="Q5_K_M", arch="llama", state="unmanaged", used=NOW - 3 * 3600),
    ]
    partials = [
        PartialDownload(key="9c1e0aa3", files=[Path("/srv/models/.gguf-tui/partials/9c1e0aa3.part")],
                        size=4_100_000_000, dest="TheBloke/old-model.Q4_K_M.gguf", total=4_100_000_000,
                        bytes_done=2_400_000_000, updated_at=NOW - 12 * DAY)
    ]
    return StoreSnapshot(
        root=Path("/srv/models"), models=models, total_size=sum(m.size for m in models),
        free_space=118_000_000_000, partials=partials, problems=[], stale_manifests=[],
        scanned_at=NOW,
    )


class FakeStore:
    def __init__(self, snapshot: StoreSnapshot | None = None, others: OtherStoresSnapshot | None = None,
                 duplicates: list[DuplicateGroup] | None = None) -> None:
        self.snapshot = snapshot or demo_snapshot()
        self.others = others or OtherStoresSnapshot()
        self.duplicates = duplicates or []

    def scan(self) -> StoreSnapshot:
        return self.snapshot

    def scan_others(self, ours: StoreSnapshot, others: OtherStoresSnapshot | None = None) -> AllStores:
        return AllStores(ours, self.others, list(self.duplicates))

    def free_space(self) -> int:
        return self.snapshot.free_space

    def watch(self) -> None:
        return None

    def partials(self) -> list[PartialDownload]:
        return list(self.snapshot.partials)


class FitHub(FakeHub):
    """A Hub with one repo of real GGUF headers (`tests/helpers/fitrepo.py`): the fit column
    judges them, on GPUs stated by hand, the same way on every machine."""

    def __init__(self, folder: Path) -> None:
        from tests.helpers.fitrepo import make_fit_quants

        self.paths = make_fit_quants(folder)

    async def search(self, query: str) -> list[SearchResult]:
        from tests.helpers.fitrepo import FIT_REPO

        return [SearchResult(FIT_REPO, downloads=5_000, likes=12, last_modified="2026-09-18T07:00:00.000Z")]

    async def repo_files(self, repo: str) -> RepoFiles:
        raw = [(path, file.stat().st_size) for path, file in self.paths.items()]
        files = assign_local_names([annotate(path, size, SHA, lfs=True) for path, size in raw])
        quants, other = group_files(files)
        return RepoFiles(repo=repo, revision="main", commit="0123456789abcdef0123456789abcdef01234567",
                         quants=quants, mmprojs=[], other=other, license="mit")  # fmt: skip

    async def read_gguf_header(self, repo: str, path: str, revision: str) -> tuple[GGUFInfo, int]:
        from gguf_tui.gguf import read_gguf

        return read_gguf(self.paths[path]), 65536


# ---- other tools' stores (issue 14) ------------------------------------------------------------

HOME = Path("/home/ada")


def _other(tool: str, name: str, root: Path, files: list[tuple[str, str, int, str | None]], *,
           quant: str, arch: str = "llama", problem: str | None = None, revision: str | None = None,
           manifest: Path | None = None) -> OtherModel:
    """Another tool's model with fixed paths, sizes and times: (path, data path, size, sha)."""
    entries = [
        OtherFile(path=root / path, data_path=root / data, size=size, device=1,
                  inode=10_000 + sum(map(ord, data)), links=1, mtime_ns=int((NOW - 5 * DAY) * 1e9),
                  role="mmproj" if "mmproj" in path or "projector" in data else "model", sha256=sha)
        for path, data, size, sha in files
    ]
    facts = {"architecture": arch, "quantization": quant, "parameter_count": 8_030_000_000,
             "context_length": 131072}
    return OtherModel(tool, name, root, entries, {} if problem else facts, problem, revision, manifest)


LLAMA_SHA = "9b4c2a7e1d3f5a6b8c0d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a0b2c4d6e8f0a1b"


def demo_others() -> tuple[OtherStoresSnapshot, list[DuplicateGroup]]:
    """An HF cache, LM Studio, Ollama and llama.cpp holding five models, one of them a second
    copy of our Llama (4.92 GB that linking frees), and one broken HF entry."""
    hf = HOME / ".cache/huggingface/hub"
    llama_repo = hf / "models--bartowski--Llama-3.1-8B-Instruct-GGUF"
    rev = "0123456789abcdef0123456789abcdef01234567"
    lms = HOME / ".lmstudio/models"
    ollama = HOME / ".ollama/models"
    llama_cpp = HOME / ".cache/llama.cpp"
    models = [
        _other("hf", "bartowski/Llama-3.1-8B-Instruct-GGUF/Llama-3.1-8B-Instruct-Q4_K_M.gguf", llama_repo,
               [(f"snapshots/{rev}/Llama-3.1-8B-Instruct-Q4_K_M.gguf", f"blobs/{LLAMA_SHA}", 4_920_000_000, LLAMA_SHA)],
               quant="Q4_K_M", revision=rev),
        _other("hf", "acme/Broken-GGUF/broken-Q4_0.gguf", hf / "models--acme--Broken-GGUF", [],
               quant="", problem="dangling symlink: ../../blobs/77aa does not exist", revision=rev),
        _other("llama.cpp", "ggml-org_gemma-3-4b-it-GGUF_gemma-3-4b-it-Q4_K_M.gguf", llama_cpp,
               [("ggml-org_gemma-3-4b-it-GGUF_gemma-3-4b-it-Q4_K_M.gguf",
                 "ggml-org_gemma-3-4b-it-GGUF_gemma-3-4b-it-Q4_K_M.gguf", 2_490_000_000, None)],
               quant="Q4_K_M", arch="gemma3"),
        _other("lmstudio", "lmstudio-community/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf", lms,
               [("lmstudio-community/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf",
                 "lmstudio-community/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf", 5_030_000_000, None)],
               quant="Q4_K_M", arch="qwen3"),
        _other("ollama", "qwen2.5vl:7b", ollama,
               [("blobs/sha256-" + "a1" * 32, "blobs/sha256-" + "a1" * 32, 4_680_000_000, "a1" * 32),
                ("blobs/sha256-" + "b2" * 32, "blobs/sha256-projector" + "b2" * 26, 1_350_000_000, "b2" * 32)],
               quant="Q4_K_M", arch="qwen2vl",
               manifest=ollama / "manifests/registry.ollama.ai/library/qwen2.5vl/7b"),
    ]
    others = OtherStoresSnapshot(models=models, roots={
        "hf": [hf], "llama.cpp": [llama_cpp], "lmstudio": [lms], "ollama": [ollama]})
    ours = Copy("gguf-tui", "bartowski/Llama-3.1-8B-Instruct-GGUF:Q4_K_M",
                Path("/srv/models/bartowski/Llama-3.1-8B-Instruct-GGUF/Llama-3.1-8B-Instruct-Q4_K_M.gguf"),
                4_920_000_000, 1, 501, 1, 0, LLAMA_SHA)
    theirs = Copy("hf", models[0].name, models[0].files[0].data_path, 4_920_000_000, 1,
                  models[0].files[0].inode, 1, 0, LLAMA_SHA)
    return others, [DuplicateGroup(LLAMA_SHA, 4_920_000_000, [ours, theirs])]


def box_store() -> FakeStore:
    """Our demo store on a box where other tools hold models too."""
    others, duplicates = demo_others()
    return FakeStore(others=others, duplicates=duplicates)
