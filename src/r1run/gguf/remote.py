"""Read a hub model's GGUF headers with HTTP Range requests through huggingface_hub (no tensor data).

    GET {endpoint}/api/models/{repo}/tree/{revision}/{folder}?recursive=true   file names and sizes
    GET {endpoint}/{repo}/resolve/{revision}/{file}   Range: bytes=A-B  ->  206 Partial Content

A DeepSeek-R1 first shard's header (with its 129k-token vocabulary) is about 5 MB; the other
shards' headers are a few tens of KB, so inspecting a 3-shard quant fetches a few MB in total.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from r1run import hub
from r1run.errors import GGUFError, R1runError
from r1run.gguf.analyze import model_from_headers
from r1run.gguf.reader import Limits, read_header
from r1run.gguf.shards import complete_set, group_files, split_parts

REMOTE_CHUNK = 2 << 20  # bytes per Range request: a first shard's header takes 2-3 of them


class HubSource:
    """One file in a hub repository as a ByteSource: each `read` is one HTTP Range request."""

    def __init__(self, repo_id: str, filename: str, size: int, *, revision: str | None = None,
                 endpoint: str | None = None, token: str | bool | None = None) -> None:
        self.repo_id, self.filename = repo_id, filename
        self.url = hub.file_url(repo_id, filename, revision, at=endpoint)
        self.name = f"hf://{repo_id}/{filename}"
        self.size = size
        self.token = token
        self.requests = 0
        self.bytes_fetched = 0

    def read(self, offset: int, n: int) -> bytes:
        end = min(offset + n, self.size) - 1
        if end < offset:
            return b""
        with hub.explained(self.repo_id, path=self.filename):
            data = hub.retrying(lambda: self._get(offset, end))
        self.requests += 1
        self.bytes_fetched += len(data)
        return data

    def _get(self, offset: int, end: int) -> bytes:
        headers = hub.auth_headers(self.token, {"Range": f"bytes={offset}-{end}"})
        # max_retries=0: r1run's own backoff (hub.retrying) decides about trying again
        from huggingface_hub.utils import hf_raise_for_status, http_stream_backoff  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

        with http_stream_backoff("GET", self.url, headers=headers, max_retries=0) as r:
            hf_raise_for_status(r)
            if r.status_code != 206 and offset != 0:
                raise R1runError(f"{self.name}: the server ignored the Range request (HTTP {r.status_code})",
                                 "use the hub or a mirror that supports Range, or download the model first")
            data = bytearray()
            for block in r.iter_bytes():  # stop at n bytes even if the server sends the whole file
                data += block
                if len(data) >= end - offset + 1:
                    break
        return bytes(data[: end - offset + 1])


def _list_gguf(repo_id: str, folder: str, revision: str | None, endpoint: str | None,
               token: str | bool | None) -> dict[str, int]:
    """path -> size of every .gguf file under `folder` ('' for the whole repo)."""

    from huggingface_hub import HfApi  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)
    from huggingface_hub.hf_api import RepoFile  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

    api = HfApi(endpoint=endpoint or hub.endpoint(), token=token, library_name=hub.LIBRARY)
    with hub.explained(repo_id, revision=revision, path=folder):
        entries = hub.retrying(lambda: list(api.list_repo_tree(repo_id, path_in_repo=folder or None,
                                                               revision=revision, recursive=True)))
    return {e.path: e.size for e in entries if isinstance(e, RepoFile) and e.path.endswith(".gguf")}


def remote_files(repo_id: str, path: str = "", *, revision: str | None = None, endpoint: str | None = None,
                 token: str | bool | None = None) -> list[tuple[str, int]]:
    """The ordered (path, size) files of the one model at `path` in a repo: a file, any shard, or a folder."""
    path = path.strip("/")
    is_file = path.endswith(".gguf")
    folder = str(PurePosixPath(path).parent) if is_file else path
    sizes = _list_gguf(repo_id, "" if folder == "." else folder, revision, endpoint, token)
    where = f"hf://{repo_id}/{path}"
    if is_file:
        parts = split_parts(PurePosixPath(path).name)
        if parts is None:
            if path not in sizes:
                raise GGUFError(f"{where}: no such file in the repository", "check the file name")
            return [(path, sizes[path])]
        prefix = str(PurePosixPath(path).parent / parts[0]).removeprefix("./")
        names = [p for p in sizes if p.startswith(prefix + "-") and split_parts(PurePosixPath(p).name)]
        ordered = complete_set(sorted(PurePosixPath(p).name for p in names), where) if names else [path]
        files = [str(PurePosixPath(path).parent / n).removeprefix("./") for n in ordered]
        if files[0] not in sizes:
            raise GGUFError(f"{where}: no such file in the repository", "check the file name")
        return [(f, sizes[f]) for f in files]
    by_parent: dict[str, list[str]] = {}
    for p in sizes:
        pp = PurePosixPath(p)
        by_parent.setdefault(str(pp.parent), []).append(pp.name)
    groups = [(parent, g) for parent, names in by_parent.items() for g in group_files(names).values()]
    groups = [(p, g) for p, g in groups if not g[0].startswith("mmproj")] or groups
    if not groups:
        raise GGUFError(f"{where}: no .gguf files there", "name a folder or file that holds a GGUF model")
    if len(groups) > 1:
        listed = ", ".join(str(PurePosixPath(p) / g[0]).removeprefix("./") for p, g in groups[:6])
        raise GGUFError(f"{where} holds {len(groups)} models: {listed}{', ...' if len(groups) > 6 else ''}",
                        "name one of them (a quant's folder or its first shard)")
    parent, names = groups[0]
    files = [str(PurePosixPath(parent) / n).removeprefix("./") for n in complete_set(names, where)]
    return [(f, sizes[f]) for f in files]


def read_remote_model(repo_id: str, path: str = "", *, revision: str | None = None, endpoint: str | None = None,
                      token: str | bool | None = None, chunk: int = REMOTE_CHUNK):
    """ModelInfo of the model at `path` in a hub repo, fetching only each shard's header."""

    if hub.offline():
        raise hub.offline_error()
    why = hub.unreachable(endpoint)
    if why:
        raise hub.HubUnreachable(f"hf://{repo_id}/{path}: {why}",
                                 "check the network or HF_ENDPOINT, or use a local file")
    files = remote_files(repo_id, path, revision=revision, endpoint=endpoint, token=token)
    limits = Limits(chunk=chunk)
    headers = [read_header(HubSource(repo_id, f, size, revision=revision, endpoint=endpoint, token=token), limits)
               for f, size in files]
    return model_from_headers(headers, source=f"hf://{repo_id}/{files[0][0]}")
