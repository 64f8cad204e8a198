"""The one exception the Hub client raises, and the messages users see for Hub error codes."""

from __future__ import annotations

from collections.abc import Mapping

from gguf_tui.textsafe import plain

TOKEN_HINT = "give it via HF_TOKEN or the file $HF_HOME/token"


class HubError(Exception):
    """A Hub request or a REF resolution failed; `str()` is one line fit for stderr.

    `kind` says what went wrong so callers can react without parsing text: "not_found",
    "gated", "auth", "denied", "rate_limited", "http", "network", "bad_response", "unsafe_path",
    "unknown_quant", "incomplete", "ambiguous", "bad_ref", "timeout". `status` is the HTTP
    status if any.
    Messages never contain tokens or signed URLs.
    """

    def __init__(self, message: str, *, kind: str = "http", status: int | None = None) -> None:
        one_line = " ".join(plain(message).split())
        super().__init__(one_line)
        self.kind = kind
        self.status = status

    def __repr__(self) -> str:
        return f"HubError({str(self)!r}, kind={self.kind!r}, status={self.status!r})"


class RefError(HubError):
    """What the user typed is not a usable REF or repo id: a usage error (exit 2), not a Hub one.

    Raised before any network access, so the command line can tell "you typed it wrong" from
    "the Hub said no" without parsing the message.
    """

    def __init__(self, message: str, *, kind: str = "bad_ref") -> None:
        super().__init__(message, kind=kind)


def gated_message(repo: str, repo_page: str, *, had_token: bool) -> str:
    """The message for a gated repo: what is needed and where to put the token."""
    if had_token:
        return (
            f"{repo} is a gated repo and the token given has no access to it: accept the terms "
            f"on the repo page {repo_page} with the account that owns the token"
        )
    return (
        f"{repo} is a gated repo: a token with granted access is needed; accept the terms on "
        f"the repo page {repo_page}, then {TOKEN_HINT}"
    )


def error_for_code(
    code: str,
    *,
    status: int,
    repo: str | None,
    revision: str | None,
    path: str | None,
    repo_page: str,
    had_token: bool,
) -> HubError | None:
    """Map the Hub's `X-Error-Code` header to a HubError, or None for codes we do not know."""
    what = repo or "the repository"
    if code == "RepoNotFound":
        hint = (
            "check the name; a private repo needs a token with access"
            if had_token
            else "check the name; a private repo also needs a token via HF_TOKEN or $HF_HOME/token"
        )
        return HubError(f"Hub repository {what} not found ({hint})", kind="not_found", status=status)
    if code == "EntryNotFound":
        where = f" at revision {revision}" if revision else ""
        return HubError(
            f"file {plain(path or '?')!r} not found in {what}{where}", kind="not_found", status=status
        )
    if code == "RevisionNotFound":
        return HubError(
            f"revision {plain(revision or '?')!r} not found in {what}", kind="not_found", status=status
        )
    if code == "GatedRepo":
        return HubError(gated_message(what, repo_page, had_token=had_token), kind="gated", status=status)
    if code == "DisabledRepo":
        return HubError(f"{what} has been disabled on the Hub", kind="denied", status=status)
    return None


def _server_message(headers: Mapping[str, str], body: bytes) -> str:
    message = headers.get("X-Error-Message") or ""
    if not message and body:
        from gguf_tui.hub.wire import try_parse_json  # wire imports this module

        data = try_parse_json(body)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            message = data["error"]
    return plain(message)[:200]


def http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes = b"",
    *,
    what: str,
    repo: str | None = None,
    revision: str | None = None,
    path: str | None = None,
    repo_page: str,
    had_token: bool,
    secret: str | None = None,
) -> HubError:
    """A HubError for a failed Hub reply: X-Error-Code first, then the status."""
    if repo is None and headers.get("X-Error-Code") == "RepoNotFound":
        # A call about no repository (search) answered as if it named one: a mirror that does
        # not serve this call (Olah does not serve search), not a missing repository.
        return HubError(
            f"{repo_page} does not serve {what} (HTTP {status}, 'Repository not found'): "
            "a Hub mirror without this call? Point HF_ENDPOINT at the Hub to use it",
            kind="not_found",
            status=status,
        )
    known = error_for_code(
        headers.get("X-Error-Code", ""),
        status=status,
        repo=repo,
        revision=revision,
        path=path,
        repo_page=repo_page,
        had_token=had_token,
    )
    if known is not None:
        return known
    server = _server_message(headers, body)
    if secret:
        server = server.replace(secret, "<token>")
    suffix = f": {server}" if server else ""
    if status == 401:
        if had_token:
            message = f"the Hub rejected the token (HTTP 401, {what}): check HF_TOKEN or $HF_HOME/token"
        else:
            message = f"the Hub needs a token for {what} (HTTP 401); {TOKEN_HINT}"
        return HubError(message, kind="auth", status=401)
    if status == 403:
        hint = "" if had_token else f"; a token may be needed ({TOKEN_HINT})"
        return HubError(
            f"the Hub denied access to {what} (HTTP 403){suffix}{hint}", kind="denied", status=403
        )
    if status == 404:
        return HubError(f"{what}: not found on the Hub (HTTP 404)", kind="not_found", status=404)
    if status == 429:
        return HubError(f"the Hub is rate limiting requests ({what})", kind="rate_limited", status=429)
    return HubError(f"Hub request failed ({what}): HTTP {status}{suffix}", kind="http", status=status)
