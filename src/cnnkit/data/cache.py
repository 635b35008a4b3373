"""Where cnnkit keeps downloads and decoded folders, and how it writes there atomically."""

from __future__ import annotations

import glob
import hashlib
import os
import struct
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cache_root", "atomic_path", "remove_stale_parts", "files_fingerprint"]

ENV_VAR = "CNNKIT_CACHE"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir`` if given, else ``$CNNKIT_CACHE``, else ``~/.cache/cnnkit``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "cnnkit"


@contextmanager
def atomic_path(dest: str | os.PathLike):
    """Yield a temporary path beside ``dest``; on success it replaces ``dest`` in one step.

    On any error (or interrupt) the temporary file is removed, so ``dest`` is either the
    old file, absent, or the complete new file: never half written.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; a cache file is not a secret
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_stale_parts(dest: str | os.PathLike, older_than_s: float = 3600.0) -> list[Path]:
    """Remove the temporary files ``atomic_path`` left beside ``dest`` when its process was
    killed (SIGKILL, power loss: no ``finally`` ran). A live writer touches its file at least
    every read timeout, so one untouched for ``older_than_s`` has no writer."""
    dest = Path(dest)
    if not dest.parent.is_dir():
        return []
    removed = []
    now = time.time()
    for part in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        try:
            if now - part.stat().st_mtime > older_than_s:
                part.unlink()
                removed.append(part)
        except OSError:  # another process removed it first
            pass
    return removed


def files_fingerprint(entries) -> bytes:
    """SHA-256 over each ``(path, label, size, mtime_ns, ctime_ns, inode)`` entry of a folder
    scan (``layout.FileEntry``): what a decoded-folder cache entry is valid for.

    Size and mtime alone miss a file rewritten in place with both put back (``os.utime``,
    ``cp -p``, ``rsync -t``); the ctime (which the kernel sets to now on every write and on
    every ``utime``, and no user can set back) and the inode (a new file has a new one) do not.
    """
    h = hashlib.sha256()
    for path, *numbers in entries:
        h.update(path.encode("utf-8", "surrogateescape") + b"\0")
        h.update(struct.pack(f"<{len(numbers)}q", *(v if v < 2**63 else v - 2**64 for v in numbers)))
    return h.digest()
