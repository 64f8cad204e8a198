"""REF strings for `pull`: parse them, and resolve them into one download JobSpec.

Accepted forms (a `hf.co/`, `huggingface.co/`, `https://huggingface.co/` or configured-endpoint
prefix is allowed on all of them; QUANT and the repo id are matched case-insensitively):

- `owner/repo` or `owner/repo:QUANT`: every split part of that quant plus the repo's mmproj,
  as ONE logical model. No QUANT means Q4_K_M, or the closest complete quant available.
- `owner/repo/path/to/file.gguf`: one Hub file (all parts when it names a split part).
- a revision: `owner/repo@REV:QUANT`, `owner/repo:QUANT@REV`, `owner/repo@REV/file.gguf`,
  `owner/repo/file.gguf@REV`, or a page URL `.../resolve|blob/REV/file.gguf`, `.../tree/REV`.

Store names: Hub files land at `<owner>/<repo>/<safe file name>`, flat, whatever folder they
sit in on the Hub (split parts must sit side by side for llama.cpp, and LM Studio reads this
layout). Only when two GGUF files of one repo share a base name do they keep a safe sub-path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from gguf_tui.engine.spec import FileRequest, JobSpec
from gguf_tui.hub.client import _UNSET, HubClient
from gguf_tui.hub.errors import HubError, RefError, gated_message
from gguf_tui.hub.models import HubFile, QuantGroup, RepoFiles
from gguf_tui.hub.paths import check_repo_id, check_repo_path
from gguf_tui.hub.quants import DEFAULT_QUANT, closest_quant, normalise_quant, pick_mmproj
from gguf_tui.store.layout import UnsafePathError, check_relative_path
from gguf_tui.textsafe import plain

_HUB_HOSTS = ("huggingface.co", "www.huggingface.co", "hf.co")
_QUANT_TEXT_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_PAGE_KINDS = ("resolve", "blob", "raw")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# Schemes someone might paste that we never fetch (only http and https are downloaded); they
# are refused by name even without '//' ("file:/x.gguf", "data:...").
_FOREIGN_SCHEMES = frozenset(
    {"file", "ftp", "ftps", "sftp", "scp", "ssh", "data", "s3", "gs", "hf", "git", "rsync", "smb"}
)
FORMS = "owner/repo, owner/repo:QUANT, owner/repo/FILE.gguf or an http(s) URL"


@dataclass(frozen=True)
class HubRef:
    """A parsed REF: a repo with either a quant (None: the default) or one file path."""

    repo: str
    quant: str | None = None
    path: str | None = None
    revision: str = "main"

    @property
    def is_file(self) -> bool:
        return self.path is not None


def _bad(ref: str, why: str) -> RefError:
    return RefError(f"not a Hub reference: {plain(ref)!r} ({why})")


def _check_scheme(ref: str) -> None:
    """Refuse a URL scheme other than http(s) by name, before its text is read as owner/repo."""
    match = _SCHEME_RE.match(ref)
    if not match:
        return
    scheme = match.group(1).lower()
    after = ref[match.end() :]
    if scheme in ("http", "https"):
        if not after.startswith("//"):
            raise RefError(f"not a valid URL: {plain(ref)!r} (expected {scheme}://HOST/PATH)")
        return
    if after.startswith("//") or scheme in _FOREIGN_SCHEMES:
        raise RefError(
            f"unsupported URL scheme {plain(scheme)!r} in {plain(ref)!r}: "
            f"give {FORMS}"
        )


def _strip_prefix(ref: str, endpoint: str | None) -> str | None:
    """The part after a Hub host prefix, the ref itself if it has none, None if foreign URL."""
    lowered = ref.lower()
    if lowered.startswith(("http://", "https://")):
        parts = urlsplit(ref)
        host = (parts.hostname or "").lower()
        path = parts.path
        if endpoint:
            ep = urlsplit(endpoint)
            same_host = host == (ep.hostname or "").lower() and (parts.port or None) == (
                ep.port or None
            )
            ep_path = ep.path.rstrip("/")
            if same_host and path.startswith(ep_path + "/"):
                return path[len(ep_path) :]
        if host in _HUB_HOSTS:
            return path
        return None
    for host in _HUB_HOSTS:
        if lowered.startswith(host + "/"):
            return ref[len(host) :]
    return ref


def is_hub_ref(ref: str, endpoint: str | None = None) -> bool:
    """True when `ref` names a Hub repo or file (False for a plain URL to another host)."""
    try:
        parse_ref(ref, endpoint)
    except HubError:
        return False
    return True


def _check_revision(ref: str, revision: str | None) -> str:
    if revision is None:
        return "main"
    if not revision or revision != plain(revision) or len(revision) > 256 or ".." in revision:
        raise _bad(ref, "bad revision")
    return revision


def parse_ref(ref: str, endpoint: str | None = None) -> HubRef:
    """Parse a REF string (see the module docstring) without any network access."""
    text = ref.strip()
    _check_scheme(text)
    rest = _strip_prefix(text, endpoint)
    if rest is None:
        raise _bad(ref, "a URL on another host")
    rest = rest.split("?", 1)[0].split("#", 1)[0].strip("/")
    if not rest:
        raise _bad(ref, f"expected {FORMS}")
    segments = [unquote(s) for s in rest.split("/")]
    # Page URLs: owner/repo/resolve/REV/path, owner/repo/blob/REV/path, owner/repo/tree/REV.
    if len(segments) >= 4 and segments[2] in _PAGE_KINDS + ("tree",):
        repo = check_repo_id("/".join(segments[:2]))
        revision = _check_revision(ref, segments[3])
        if segments[2] == "tree":
            return HubRef(repo=repo, revision=revision)
        return HubRef(repo=repo, path=_check_file_path(ref, "/".join(segments[4:])), revision=revision)
    rest = "/".join(segments)
    if ":" in rest:
        head, _, quant = rest.partition(":")
        revision = None
        if "@" in quant:
            quant, revision = quant.split("@", 1)
        if "@" in head:
            head, head_revision = head.split("@", 1)
            if revision is not None and revision != head_revision:
                raise _bad(ref, "two different revisions")
            revision = head_revision
        if quant and not _QUANT_TEXT_RE.match(quant):
            raise _bad(ref, f"bad quant {plain(quant)!r}")
        if head.count("/") != 1:
            raise _bad(ref, "expected owner/repo:QUANT")
        return HubRef(
            repo=check_repo_id(head),
            quant=normalise_quant(quant) if quant else None,
            revision=_check_revision(ref, revision),
        )
    revision = None
    if "@" in rest:
        before, _, after = rest.rpartition("@")
        if before.lower().endswith(".gguf") and not after.lower().endswith(".gguf"):
            rest, revision = before, after
    segments = rest.split("/")
    if len(segments) < 2:
        raise _bad(ref, f"expected {FORMS}")
    if "@" in segments[1]:
        segments[1], head_revision = segments[1].split("@", 1)
        if revision is not None:
            raise _bad(ref, "two revisions")
        revision = head_revision
    repo = check_repo_id("/".join(segments[:2]))
    revision = _check_revision(ref, revision)
    if len(segments) == 2:
        return HubRef(repo=repo, revision=revision)
    return HubRef(repo=repo, path=_check_file_path(ref, "/".join(segments[2:])), revision=revision)


def _check_file_path(ref: str, path: str) -> str:
    if not path.lower().endswith(".gguf"):
        raise _bad(ref, "a file REF must name a .gguf file")
    reason = check_repo_path(path)
    if reason:
        raise RefError(f"refusing unsafe path in {plain(ref)!r}: {reason}", kind="unsafe_path")
    return path


# ---- choosing files -----------------------------------------------------------------------


def _available(files: RepoFiles) -> str:
    names = []
    for group in files.quants:
        if group.quant not in names:
            names.append(group.quant)
    return ", ".join(names) or "none"


def _cut(files: RepoFiles) -> str:
    """A hint for "not found" when the listing was cut at the entry cap."""
    if files.truncated_at is None:
        return ""
    return (
        f" (the file list was truncated at {files.truncated_at} entries; later files are unknown)"
    )


def _single(groups: list[QuantGroup], repo: str, quant: str) -> QuantGroup:
    complete = [g for g in groups if g.complete] or groups
    if len(complete) > 1:
        listed = ", ".join(g.files[0].display for g in complete[:6])
        raise HubError(
            f"{repo} has {len(complete)} {quant} models ({listed}); name one as {repo}/PATH",
            kind="ambiguous",
        )
    group = complete[0]
    if not group.complete:
        missing = ", ".join(str(p) for p in group.missing_parts) or "sizes unknown"
        raise HubError(
            f"{repo}:{quant} is incomplete on the Hub: {group.part_count} parts announced, "
            f"missing part(s) {missing}",
            kind="incomplete",
        )
    return group


def choose_quant(files: RepoFiles, quant: str | None) -> QuantGroup:
    """The group for `quant`; with no quant, Q4_K_M or the closest complete quant available."""
    repo = files.repo
    if quant is not None:
        groups = files.find_quant(quant)
        if not groups:  # 'Q4_K_XL' finds 'UD-Q4_K_XL' and the other way round
            bare = quant.removeprefix("UD-")
            groups = [g for g in files.quants if (g.quant or "").removeprefix("UD-") == bare]
        if not groups:
            raise HubError(
                f"{repo} has no {plain(quant)} quant; available: {_available(files)}{_cut(files)}",
                kind="unknown_quant",
            )
        return _single(groups, repo, quant)
    groups = files.find_quant(DEFAULT_QUANT)
    if not any(g.complete for g in groups):
        complete = [g.quant for g in files.quants if g.complete and g.quant]
        nearest = closest_quant(DEFAULT_QUANT, complete)
        if nearest is None:
            if len(files.other) == 1 and files.other[0].complete:
                return files.other[0]
            if files.quants:
                raise HubError(
                    f"{repo} has no complete quant to download; listed: {_available(files)}",
                    kind="incomplete",
                )
            raise HubError(f"{repo} has no GGUF model files{_cut(files)}", kind="not_found")
        groups = files.find_quant(nearest)
    return _single(groups, repo, groups[0].quant or DEFAULT_QUANT)


def choose_file(files: RepoFiles, path: str) -> tuple[list[HubFile], QuantGroup | None]:
    """The files a path REF means: the file, or every part of the split it belongs to."""
    for skipped in files.skipped:
        if skipped.path == plain(path):
            raise HubError(
                f"refusing unsafe path {skipped.path!r} in {files.repo}: {skipped.reason}",
                kind="unsafe_path",
            )
    for hub_file in files.mmprojs:
        if hub_file.path == path:
            return [hub_file], None
    groups = files.quants + files.other
    for exact in (True, False):
        for group in groups:
            for hub_file in group.files:
                if hub_file.path == path if exact else hub_file.path.lower() == path.lower():
                    if not group.complete:
                        _single([group], files.repo, group.quant or hub_file.name)
                    return list(group.files), group
    known = [g.files[0].display for g in groups][:8]
    hint = f"; GGUF files there: {', '.join(known)}" if known else ""
    raise HubError(
        f"file {plain(path)!r} not found in {files.repo} at revision {plain(files.revision)}"
        f"{hint}{_cut(files)}",
        kind="not_found",
    )


# ---- building the JobSpec -----------------------------------------------------------------


def _request(client: HubClient, files: RepoFiles, hub_file: HubFile, role: str) -> FileRequest:
    revision = files.commit or files.revision
    try:
        dest = check_relative_path(f"{files.repo}/{hub_file.local_name}")
    except UnsafePathError as exc:
        raise HubError(f"refusing unsafe store path: {exc}", kind="unsafe_path") from None
    token_headers = client.auth_headers()
    url = client.resolve_url(files.repo, hub_file.path, revision)
    path_on_endpoint = url[len(client.endpoint) :]  # '/owner/repo/resolve/REV/PATH'
    return FileRequest(
        url=url,
        dest=dest,
        expected_sha256=hub_file.sha256,
        expected_size=hub_file.size,
        revision=revision,
        role=role,
        auth_headers=token_headers,
        auth_origin=client.origin if token_headers else None,
        # The same file on the fallback endpoints after the one in use, tried in order when it
        # answers 5xx or cannot be reached.
        mirror_urls=[f"{endpoint}{path_on_endpoint}" for endpoint in client.fallback_urls],
    )


async def resolve_ref(
    ref: str,
    config: Any,
    session: aiohttp.ClientSession,
    *,
    no_mmproj: bool = False,
    client: HubClient | None = None,
    token: str | None = _UNSET,
) -> JobSpec:
    """Turn a Hub REF into ONE JobSpec: the quant's file or split parts, plus the mmproj.

    File URLs are the Hub's resolve URLs pinned to the commit sha (so a re-resolve after an
    expired CDN URL fetches the same bytes); `revision` is that sha, or the revision name when
    the Hub gave none. Raises HubError with a one-line message for anything that cannot be
    resolved (unknown repo or quant, gated repo without access, unsafe paths).
    `client` lets a long-lived caller (the TUI) reuse its HubClient; `token` overrides
    HF_TOKEN / $HF_HOME/token.
    """
    hub_ref = parse_ref(ref, config.hub.endpoint)
    if client is None:
        client = HubClient.from_config(config, session, token=token)
    files = await client.repo_files(hub_ref.repo, hub_ref.revision)
    if hub_ref.path is not None:
        chosen, group = choose_file(files, hub_ref.path)
        quant = group.quant if group else chosen[0].quant
        if len(chosen) > 1:
            roles = ["part"] * len(chosen)
        else:
            roles = ["mmproj" if chosen[0].is_mmproj else "model"]
        name = f"{files.repo}/{chosen[0].display}"
    else:
        group = choose_quant(files, hub_ref.quant)
        chosen = list(group.files)
        roles = ["part" if len(chosen) > 1 else "model"] * len(chosen)
        quant = group.quant
        name = f"{files.repo}:{group.quant}" if group.quant else f"{files.repo}/{group.name}"
        mmproj = None if no_mmproj else pick_mmproj(files.mmprojs, config.hub.prefer_mmproj)
        if mmproj is not None:
            chosen.append(mmproj)
            roles.append("mmproj")
    if files.gated:
        if not client.has_token:
            raise HubError(
                gated_message(files.repo, client.repo_page(files.repo), had_token=False),
                kind="gated",
            )
        await client.check_access(files.repo, chosen[0].path, files.commit or files.revision)
    requests = [_request(client, files, f, role) for f, role in zip(chosen, roles)]
    dests = [request.dest for request in requests]
    if len(set(dests)) != len(dests):  # one store file twice in one model: never download it so
        raise HubError(
            f"{files.repo}: the listing names one file twice for {name}", kind="bad_response"
        )
    return JobSpec(
        name=name,
        files=requests,
        source={
            "kind": "hub",
            "repo": files.repo,
            "revision": files.commit or files.revision,
            "revision_name": plain(files.revision),
            "quant": quant,
            "files": [f.display for f in chosen],
            "endpoint": client.redacted_endpoint,
        },
        license=files.license,
    )
