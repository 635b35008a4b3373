"""Download a file with a checksum, atomically: the cache never holds a partial file.

This module is the one place cnnkit opens network connections (datasets and published
weights both come through :func:`download`), so the offline switch lives here:
``CNNKIT_OFFLINE=1`` (or ``true``/``yes``/``on``) makes every download raise
:class:`OfflineError` before any connection is made.

A download has two time limits: ``timeout`` for each read (a silent server) and
``deadline_s`` for the whole file (a server that trickles bytes); either leaves nothing
behind in the cache.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..train.progress import Task
from .cache import atomic_path, remove_stale_parts

__all__ = ["download", "file_md5", "offline", "open_url", "DownloadError", "ChecksumError",
           "OfflineError", "DeadlineError", "OFFLINE_ENV", "DEFAULT_DEADLINE_S"]

_CHUNK = 1 << 20
OFFLINE_ENV = "CNNKIT_OFFLINE"
DEFAULT_DEADLINE_S = 1800.0  # a whole file; CIFAR-100 (161 MB) needs ~90 KB/s to make it


class DownloadError(OSError):
    """Every address for a file failed (offline, HTTP error, partial body, bad checksum)."""


class ChecksumError(DownloadError):
    """The bytes arrived but their checksum is not the published one."""


class OfflineError(DownloadError):
    """``CNNKIT_OFFLINE`` is set: no connection was opened."""


class DeadlineError(DownloadError):
    """The file did not arrive within the overall deadline."""


def offline() -> bool:
    """True when ``CNNKIT_OFFLINE`` is set to anything but '', 0, false, no or off."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def open_url(url: str, timeout: float):
    """``urlopen`` behind the offline switch: every connection cnnkit opens starts here."""
    if offline():
        raise OfflineError(f"{OFFLINE_ENV} is set, so cnnkit opens no network connection")
    req = urllib.request.Request(url, headers={"User-Agent": "cnnkit"})
    return urllib.request.urlopen(req, timeout=timeout)


def file_md5(path: str | os.PathLike) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fetch(url: str, dest: Path, md5: str | None, sha256_prefix: str | None, timeout: float,
           deadline_s: float | None, quiet: bool) -> None:
    start = time.monotonic()
    with atomic_path(dest) as tmp:
        with open_url(url, timeout) as resp, open(tmp, "wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            hashes = {"md5": hashlib.md5(usedforsecurity=False), "sha256": hashlib.sha256()}
            got = 0
            if not quiet:
                size = f" ({total / 1e6:.1f} MB)" if total else ""
                print(f"cnnkit: downloading {url}{size}", file=sys.stderr, flush=True)
            with Task(f"downloading {dest.name}", total, "B", enabled=not quiet) as task:
                # read1: whatever has arrived (at most one wait of `timeout`), so the deadline
                # is checked between small reads even when the server sends a byte at a time
                while chunk := resp.read1(_CHUNK):
                    out.write(chunk)
                    for h in hashes.values():
                        h.update(chunk)
                    got += len(chunk)
                    task.advance(len(chunk))
                    elapsed = time.monotonic() - start
                    if deadline_s is not None and elapsed > deadline_s and (total is None or got < total):
                        of = f" of {total}" if total else ""
                        raise DeadlineError(
                            f"{url}: gave up after {elapsed:.0f} s (deadline_s={deadline_s:g}): only "
                            f"{got}{of} bytes arrived ({got / max(elapsed, 1e-9):.0f} bytes/s). The server "
                            "is too slow; try again later or fetch the file another way")
            if total is not None and got != total:
                raise DownloadError(f"{url}: partial download, {got} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and hashes["md5"].hexdigest() != md5:
            raise ChecksumError(f"{url}: md5 {hashes['md5'].hexdigest()} is not the published {md5}")
        digest = hashes["sha256"].hexdigest()
        if sha256_prefix and not digest.startswith(sha256_prefix):
            raise ChecksumError(f"{url}: SHA-256 starts {digest[:len(sha256_prefix)]}, not the "
                                f"published {sha256_prefix}; the download is corrupt or the file "
                                "was replaced")


def download(urls: str | list[str], dest: str | os.PathLike, md5: str | None = None, *,
             sha256_prefix: str | None = None, timeout: float = 30.0,
             deadline_s: float | None = DEFAULT_DEADLINE_S, quiet: bool = False) -> Path:
    """Fetch the first address that works into ``dest``, checking ``md5`` / ``sha256_prefix``.

    The bytes go to a temporary file beside ``dest`` that replaces it only once complete
    and verified; a failure of any kind (including ``timeout`` seconds without a byte, or
    the whole file taking over ``deadline_s`` seconds) leaves nothing behind, and the
    temporary files of a download that was killed are removed by the next one. Raises
    ``OfflineError`` when ``CNNKIT_OFFLINE`` is set (nothing is tried), else
    ``DownloadError`` listing each address tried and why it failed (``ChecksumError`` /
    ``DeadlineError`` when every address failed that way).
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    if offline():
        raise OfflineError(f"{dest.name} is not downloaded: {OFFLINE_ENV} is set, so cnnkit opens "
                           "no network connection")
    remove_stale_parts(dest)  # left by a download that was killed
    failures, kinds = [], set()
    for url in urls:
        try:
            _fetch(url, dest, md5, sha256_prefix, timeout, deadline_s, quiet)
            return dest
        except (OSError, http.client.HTTPException, ValueError) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            failures.append(f"  {url}: {reason}")
            kinds.add(type(e) if isinstance(e, DownloadError) else DownloadError)
    cls = kinds.pop() if len(kinds) == 1 else DownloadError
    raise cls(f"could not download {dest.name}:\n" + "\n".join(failures))
