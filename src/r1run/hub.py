"""The Hugging Face hub through huggingface_hub, for download, inspect and plan alike: where it is,
whether to ask it at all (offline mode), which failures pass, and what to tell the user when it says no.

The endpoint is HF_ENDPOINT when called (else huggingface_hub's own), offline mode is huggingface_hub's
HF_HUB_OFFLINE read when called, and the token comes from `--token`, HF_TOKEN or the stored login, in
that order (huggingface_hub's own lookup). The token is only ever put in headers.

huggingface_hub is imported inside the functions that use it, here and in the few modules that talk to
the hub: with its HTTP stack it costs about 110 ms at start-up, which chat, serve, bench and `--help`
never need (a downloaded model runs without it).
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Callable, Iterator, TypeVar
from urllib.parse import urlsplit

from r1run.errors import BadInput, R1runError
from r1run.retry import Backoff
from r1run.retry import retrying as _retrying

T = TypeVar("T")

LIBRARY = "r1run"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TOKEN_HELP = ("set HF_TOKEN or log in with `hf auth login` (`r1run download` also takes --token); "
              "create a token at https://huggingface.co/settings/tokens")


class HubUnreachable(R1runError):
    """The hub could not be reached at all (network down, wrong HF_ENDPOINT, offline mode)."""


class AccessDenied(R1runError):
    """The hub refused: token rejected, or a gated repository the token has no access to."""


def endpoint() -> str:
    if os.environ.get("HF_ENDPOINT"):
        return os.environ["HF_ENDPOINT"].rstrip("/")
    from huggingface_hub import constants  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

    return constants.ENDPOINT.rstrip("/")


def offline() -> bool:
    """huggingface_hub's offline mode: HF_HUB_OFFLINE (else TRANSFORMERS_OFFLINE) is 1, ON, YES or TRUE, in
    any case; "0", "false" or unset mean online. Read at each call, not once at import as huggingface_hub does."""

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return value is not None and value.upper() in {"1", "ON", "YES", "TRUE"}  # huggingface_hub's true values


def offline_error() -> HubUnreachable:
    return HubUnreachable("HF_HUB_OFFLINE is set, so the hub is not asked", "unset HF_HUB_OFFLINE to use the hub")


def unreachable(url: str | None = None, timeout: float = 3.0) -> str | None:
    """Why the hub at `url` (default: the endpoint) cannot be reached, or None when a TCP connection opens.

    huggingface_hub retries a refused connection for about 20 s; one quick look first makes an
    offline machine fail (or fall back) at once.
    """

    parts = urlsplit(url or endpoint())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot reach {parts.scheme}://{parts.netloc}: {exc.strerror or exc}"


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
        import requests  # noqa: PLC0415  (only huggingface_hub releases built on requests bring it)

        found += [requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError]
    except ImportError:
        pass
    return tuple(found)


def hub_errors() -> tuple[type[BaseException], ...]:
    """Every exception huggingface_hub raises for a hub or network problem (not our bugs)."""
    from huggingface_hub.utils import HfHubHTTPError, OfflineModeIsEnabled  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

    return (HfHubHTTPError, OfflineModeIsEnabled, *transport_errors())


def status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _server_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return headers.get("X-Error-Message", "") if hasattr(headers, "get") else ""


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: a network failure, a timeout, or a 5xx / 408 / 429 answer."""
    from huggingface_hub.utils import HfHubHTTPError  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

    if isinstance(exc, transport_errors()):
        return True
    return isinstance(exc, HfHubHTTPError) and status_of(exc) in RETRYABLE_STATUS


def translate(exc: BaseException, repo: str, *, revision: str | None = None,
              path: str | None = None) -> R1runError | None:
    """r1run's error (message + hint) for a huggingface_hub / HTTP exception about `repo` (and the file or
    folder `path` in it), or None when it is not one we can name."""
    from huggingface_hub.utils import (  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = endpoint()
    if isinstance(exc, OfflineModeIsEnabled):
        return offline_error()
    if isinstance(exc, GatedRepoError):  # before RepositoryNotFoundError: it is one
        return AccessDenied(
            f"{repo} is gated: your token has no access to its files",
            f"accept its conditions at {where}/{repo} while logged in, then set HF_TOKEN or log in with "
            "`hf auth login` (`r1run download` also takes --token)",
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
    if isinstance(exc, EntryNotFoundError) and path is not None:
        return BadInput(f"{repo} has no file or folder {path!r}", "check the path after hf://OWNER/REPO/")
    if isinstance(exc, HfHubHTTPError):
        code = status_of(exc)
        if code in (401, 403):
            return AccessDenied(f"the hub at {where} refused access to {repo} ({code})", TOKEN_HELP)
        if code == 404:
            return R1runError(f"a file of {repo} is listed but not served ({code})",
                              "try again later or another --revision")
        return R1runError(f"the hub at {where} answered {code} for {repo}", "try again later")
    if isinstance(exc, transport_errors()):
        return HubUnreachable(
            f"cannot reach the hub at {where}: {type(exc).__name__}",
            "check your connection; set HF_ENDPOINT to use a mirror",
        )
    return None


@contextlib.contextmanager
def explained(repo: str, *, revision: str | None = None, path: str | None = None) -> Iterator[None]:
    """Raise the block's huggingface_hub and network failures as r1run's errors (see `translate`)."""
    try:
        yield
    except hub_errors() as exc:
        mine = translate(exc, repo, revision=revision, path=path)
        if mine is None:
            raise
        raise mine from exc


@contextlib.contextmanager
def answered(repo: str) -> Iterator[None]:
    """For a block that reads the hub's API answers: an answer huggingface_hub cannot parse (a captive portal's
    HTML, a wrong HF_ENDPOINT, a hostile server's JSON) or a redirect loop is one R1runError, not a traceback."""
    try:
        yield
    except R1runError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise R1runError(f"the hub at {endpoint()} sent an answer about {repo} that is not the Hugging Face API's "
                         f"({type(exc).__name__}: {str(exc)[:80]})",
                         "check HF_ENDPOINT (a proxy or captive portal can answer with a web page)") from exc
    except Exception as exc:
        if type(exc).__name__ != "TooManyRedirects":
            raise
        raise R1runError(f"the hub at {endpoint()} redirects in a loop for {repo}",
                         "check HF_ENDPOINT and any proxy in between") from exc


def retrying(call: Callable[[], T], backoff: Backoff = Backoff()) -> T:
    """`call()` (one hub request), tried again after a network failure, a timeout or a 5xx / 408 / 429."""
    return _retrying(call, transient=lambda exc: isinstance(exc, hub_errors()) and is_transient(exc), backoff=backoff)


def auth_headers(token: str | bool | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Headers for file requests: user agent, the token when there is one, and `extra`."""
    from huggingface_hub.utils import build_hf_headers  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

    return build_hf_headers(token=token, library_name=LIBRARY, headers=extra)


def file_url(repo: str, path: str, revision: str | None = None, *, at: str | None = None) -> str:
    """The URL of a file in a repository on the hub (or on the hub at `at`)."""
    from huggingface_hub import hf_hub_url  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

    return hf_hub_url(repo, path, revision=revision, endpoint=at or endpoint())
