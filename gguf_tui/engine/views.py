"""Frozen, JSON-serialisable views of jobs: what a client sees instead of live `Job` objects.

The queue, the detail pane and `status` read only these, so they look the same whether the
engine runs in-process or in the service at the other end of a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gguf_tui.engine.spec import JobState


@dataclass(frozen=True)
class ResumeView:
    """A partial file's saved resume state: how much is on disk and how to ask for the rest."""

    bytes_done: int
    total: int | None
    ranges: tuple[tuple[int, int], ...]
    validator: str | None
    saved_at: float

    def to_json(self) -> dict:
        return {
            "bytes_done": self.bytes_done,
            "total": self.total,
            "ranges": [list(pair) for pair in self.ranges],
            "validator": self.validator,
            "saved_at": self.saved_at,
        }

    @classmethod
    def from_json(cls, data: dict) -> ResumeView:
        return cls(
            bytes_done=int(data["bytes_done"]),
            total=data.get("total"),
            ranges=tuple((int(start), int(end)) for start, end in data.get("ranges") or ()),
            validator=data.get("validator"),
            saved_at=float(data.get("saved_at") or 0.0),
        )


@dataclass(frozen=True)
class FileView:
    """One file of a job: where it lands (relative to the store root) and its resume state."""

    dest: str
    role: str = "model"
    expected_size: int | None = None
    expected_sha256: str | None = None
    resume: ResumeView | None = None
    key_hash: str = ""  # names the file's partial download in the store

    def to_json(self) -> dict:
        return {
            "dest": self.dest,
            "key_hash": self.key_hash,
            "role": self.role,
            "expected_size": self.expected_size,
            "expected_sha256": self.expected_sha256,
            "resume": self.resume.to_json() if self.resume else None,
        }

    @classmethod
    def from_json(cls, data: dict) -> FileView:
        resume = data.get("resume")
        return cls(
            dest=str(data["dest"]),
            role=str(data.get("role") or "model"),
            expected_size=data.get("expected_size"),
            expected_sha256=data.get("expected_sha256"),
            resume=ResumeView.from_json(resume) if resume else None,
            key_hash=str(data.get("key_hash") or ""),
        )


@dataclass(frozen=True)
class JobView:
    """Everything the queue, the detail pane and `status` show about one download."""

    id: int
    name: str
    state: JobState
    message: str = ""
    bytes_done: int = 0
    total: int | None = None
    speed: float = 0.0  # bytes per second, smoothed
    eta: float | None = None  # seconds
    phase: str = "downloading"  # or "re-checking"
    retry_attempt: int = 0
    retry_max: int = 0
    retry_reason: str = ""
    dest: str = ""  # the store root the files land under
    created_at: float = 0.0
    files: tuple[FileView, ...] = field(default_factory=tuple)
    source: dict = field(default_factory=dict)  # where it comes from (repo, revision): no secrets
    owner_user: str = ""  # another user who owns this job (ELSEWHERE), by name; "" otherwise

    @property
    def state_label(self) -> str:
        """The state in words: another process's job as its owner's word ('downloading
        elsewhere'), and another user's as 'downloading (user alice)'."""
        if self.state != JobState.ELSEWHERE:
            return self.state.value
        word = self.phase.removesuffix(" elsewhere") if self.phase.endswith(" elsewhere") else ""
        if self.owner_user:
            return f"{word or 'downloading'} (user {self.owner_user})"
        return self.phase if word else self.state.value

    @property
    def remaining(self) -> int:
        """Bytes still to download (0 when unknown or finished)."""
        if self.state.is_final or self.total is None:
            return 0
        return max(0, self.total - self.bytes_done)

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0, 100.0 * self.bytes_done / self.total)

    @property
    def retries(self) -> str:
        """'1/5' while retrying, else ''."""
        return f"{self.retry_attempt}/{self.retry_max}" if self.retry_attempt else ""

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state.value,
            "message": self.message,
            "bytes_done": self.bytes_done,
            "total": self.total,
            "speed": self.speed,
            "eta": self.eta,
            "phase": self.phase,
            "retry_attempt": self.retry_attempt,
            "retry_max": self.retry_max,
            "retry_reason": self.retry_reason,
            "dest": self.dest,
            "created_at": self.created_at,
            "files": [item.to_json() for item in self.files],
            "source": dict(self.source),
            "owner_user": self.owner_user,
        }

    @classmethod
    def from_json(cls, data: dict) -> JobView:
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            state=JobState(data["state"]),
            message=str(data.get("message") or ""),
            bytes_done=int(data.get("bytes_done") or 0),
            total=data.get("total"),
            speed=float(data.get("speed") or 0.0),
            eta=data.get("eta"),
            phase=str(data.get("phase") or "downloading"),
            retry_attempt=int(data.get("retry_attempt") or 0),
            retry_max=int(data.get("retry_max") or 0),
            retry_reason=str(data.get("retry_reason") or ""),
            dest=str(data.get("dest") or ""),
            created_at=float(data.get("created_at") or 0.0),
            files=tuple(FileView.from_json(item) for item in data.get("files") or ()),
            source=dict(data.get("source") or {}),
            owner_user=str(data.get("owner_user") or ""),
        )


@dataclass(frozen=True)
class CancelPreview:
    """What cancelling a job would do, so a confirmation never promises what will not happen."""

    refused: str = ""  # why cancelling is not allowed here (empty: allowed)
    deletes_partial: bool = True  # whether this job's downloaded data would be deleted
    kept_for: str = ""  # who keeps the partial when it is not deleted ("pid N on host")

    def to_json(self) -> dict:
        return {"refused": self.refused, "deletes_partial": self.deletes_partial, "kept_for": self.kept_for}

    @classmethod
    def from_json(cls, data: dict | None) -> CancelPreview:
        data = data or {}
        return cls(
            refused=str(data.get("refused") or ""),
            deletes_partial=bool(data.get("deletes_partial")),
            kept_for=str(data.get("kept_for") or ""),
        )
