"""Talking to the Hugging Face hub through huggingface_hub, and naming what went wrong.

Requests made here (huggingface_hub 0.24 to 2.x):

    GET  {endpoint}/api/models/{repo}/revision/{rev}          -> {"id": ..., "sha": ..., "gated": ...}
    GET  {endpoint}/api/models/{repo}/tree/{sha}?recursive=True&expand=False   (pages via `Link`)
    GET  {endpoint}/{repo}/resolve/{sha}/{path}   (by `fetch`, with `Range: bytes=N-` to resume)

The endpoint is read from HF_ENDPOINT when called, not when huggingface_hub was
imported, and the token comes from `--token`, HF_TOKEN or the stored login,
in that order (huggingface_hub's own lookup). It is only ever put in headers.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from r1run.download.select import RemoteFile, Snapshot
from r1run.errors import BadInput, R1runError

DEFAULT_ENDPOINT = "https://huggingface.co"
LIBRARY = "r1run"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TOKEN_HELP = "check HF_TOKEN or --token (create one at https://huggingface.co/settings/tokens)"


class HubUnreachable(R1runError):
    """The hub could not be reached at all (network down, wrong HF_ENDPOINT, offline mode)."""


class AccessDenied(R1runError):
    """The hub refused: token rejected, or a gated repository the token has no access to."""


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def unreachable(url: str | None = None, timeout: float = 3.0) -> str | None:
    """Why the hub at `url` (default: HF_ENDPOINT) cannot be reached, or None when a TCP connection opens.

    huggingface_hub retries a refused connection for about 20 s; one quick look first makes an
    offline machine fail (or fall back) at once.
    """
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url or endpoint())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot reach {parts.scheme}://{parts.netloc}: {exc.strerror or exc}"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def transport_errors() -> tuple[type[BaseException], ...]:
    """Network-level exceptions of whichever HTTP library this huggingface_hub uses."""
    found: list[type[BaseException]] = []
    for mod in ("httpx2", "httpx"):
        try:
            lib = __import__(mod)
        except ImportError:
            continue
        found.append(lib.TransportError)
    try:
        import requests

        found += [requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError]
    except ImportError:
        pass
    return tuple(found)


def status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _server_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return headers.get("X-Error-Message", "") if hasattr(headers, "get") else ""


def hub_errors() -> tuple[type[BaseException], ...]:
    """Every exception huggingface_hub raises for a hub or network problem (not our bugs)."""
    from huggingface_hub.utils import HfHubHTTPError, OfflineModeIsEnabled

    return (HfHubHTTPError, OfflineModeIsEnabled, *transport_errors())


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: a network failure, a timeout, or a 5xx / 408 / 429 answer."""
    from huggingface_hub.utils import HfHubHTTPError

    if isinstance(exc, transport_errors()):
        return True
    return isinstance(exc, HfHubHTTPError) and status_of(exc) in RETRYABLE_STATUS


def translate(exc: BaseException, repo: str, revision: str | None = None) -> R1runError | None:
    """r1run's error for a huggingface_hub / HTTP exception, or None when it is not one we can name."""
    from huggingface_hub.utils import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = endpoint()
    if isinstance(exc, OfflineModeIsEnabled):
        return HubUnreachable("HF_HUB_OFFLINE is set, so the hub is not asked", "unset HF_HUB_OFFLINE to download")
    if isinstance(exc, GatedRepoError):
        return AccessDenied(
            f"{repo} is gated: your token has no access to its files",
            f"accept its conditions at {where}/{repo} while logged in, then set HF_TOKEN or pass --token",
        )
    if isinstance(exc, RevisionNotFoundError):
        return BadInput(f"{repo} has no revision {revision!r}", "give a branch, tag or commit sha with --revision")
    if status_of(exc) == 401 and "credentials" in _server_message(exc).lower():
        return AccessDenied(f"the hub at {where} rejected your token (401)", TOKEN_HELP)
    if isinstance(exc, RepositoryNotFoundError):
        return BadInput(
            f"repository {repo} not found at {where} (or it is private)",
            f"check the name; for a private repository {TOKEN_HELP}",
        )
    if isinstance(exc, HfHubHTTPError):
        code = status_of(exc)
        if code in (401, 403):
            return AccessDenied(f"the hub at {where} refused access to {repo} ({code})", TOKEN_HELP)
        if code == 404:
            return R1runError(f"a file of {repo} is listed but not served ({code})", "try again later or another --revision")
        return R1runError(f"the hub at {where} answered {code} for {repo}", "try again later")
    if isinstance(exc, transport_errors()):
        return HubUnreachable(
            f"cannot reach the hub at {where}: {type(exc).__name__}",
            "check your connection; set HF_ENDPOINT to use a mirror",
        )
    return None


def retrying(call: Callable, *, attempts: int = 3, base: float = 0.5, sleep=time.sleep):
    """`call()` retried on transient errors with exponential backoff (base, 2*base, ...)."""
    for attempt in range(attempts):
        try:
            return call()
        except hub_errors() as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            sleep(base * 2**attempt)
    raise AssertionError("unreachable")


def auth_headers(token: str | None) -> dict[str, str]:
    """Headers for file requests: user agent, and the token when there is one."""
    from huggingface_hub.utils import build_hf_headers

    return build_hf_headers(token=token, library_name=LIBRARY)


def file_url(repo: str, path: str, commit: str) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo, path, revision=commit, endpoint=endpoint())


def resolve(repo: str, revision: str, token: str | None = None, *, backoff: float = 0.5) -> Snapshot:
    """The repository's commit for `revision` and its full file list, or a named R1runError."""
    if offline():
        raise HubUnreachable("HF_HUB_OFFLINE is set, so the hub is not asked", "unset HF_HUB_OFFLINE to download")
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile as HfRepoFile

    api = HfApi(endpoint=endpoint(), token=token, library_name=LIBRARY)
    try:
        info = retrying(lambda: api.model_info(repo, revision=revision), base=backoff)
        commit = info.sha
        if not commit:
            raise R1runError(f"the hub at {endpoint()} gave no commit for {repo}@{revision}",
                             "is HF_ENDPOINT a Hugging Face hub?")
        entries = retrying(lambda: list(api.list_repo_tree(repo, revision=commit, recursive=True)), base=backoff)
    except hub_errors() as exc:
        mine = translate(exc, repo, revision)
        if mine is None:
            raise
        raise mine from exc
    files = tuple(
        RemoteFile(
            path=e.path, size=e.size, git_oid=e.blob_id,
            sha256=e.lfs.sha256 if e.lfs is not None else None,
            xet=getattr(e, "xet_hash", None) is not None,
        )
        for e in entries if isinstance(e, HfRepoFile)
    )
    return Snapshot(repo=repo, revision=revision, commit=commit, files=files, gated=bool(getattr(info, "gated", False)))
