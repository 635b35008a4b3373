"""Download a file with a checksum, atomically: the cache never holds a partial file."""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..train.progress import Task
from .cache import atomic_path

__all__ = ["download", "file_md5", "DownloadError", "ChecksumError"]

_CHUNK = 1 << 20


class DownloadError(OSError):
    """Every address for a file failed (offline, HTTP error, partial body, bad checksum)."""


class ChecksumError(DownloadError):
    """The bytes arrived but their checksum is not the published one."""


def file_md5(path: str | os.PathLike) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fetch(url: str, dest: Path, md5: str | None, timeout: float, quiet: bool) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "cnnkit"})
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(tmp, "wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            h = hashlib.md5(usedforsecurity=False)
            got = 0
            if not quiet:
                size = f" ({total / 1e6:.1f} MB)" if total else ""
                print(f"cnnkit: downloading {url}{size}", file=sys.stderr, flush=True)
            with Task(f"downloading {dest.name}", total, "B", enabled=not quiet) as task:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    task.advance(len(chunk))
            if total is not None and got != total:
                raise DownloadError(f"{url}: partial download, {got} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and h.hexdigest() != md5:
            raise ChecksumError(f"{url}: md5 {h.hexdigest()} is not the published {md5}")


def download(urls: str | list[str], dest: str | os.PathLike, md5: str | None = None, *,
             timeout: float = 30.0, quiet: bool = False) -> Path:
    """Fetch the first address that works into ``dest``, checking ``md5``.

    The bytes go to a temporary file beside ``dest`` that replaces it only once complete
    and verified; a failure of any kind leaves nothing behind. Raises ``DownloadError``
    listing each address tried and why it failed.
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    failures = []
    for url in urls:
        try:
            _fetch(url, dest, md5, timeout, quiet)
            return dest
        except (OSError, http.client.HTTPException, ValueError) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            failures.append(f"  {url}: {reason}")
    raise DownloadError(f"could not download {dest.name}:\n" + "\n".join(failures))
