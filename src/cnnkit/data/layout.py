"""Find the classes, splits and files of an image folder.

Two layouts are understood:

- flat: ``root/<class>/**/<file>``
- split: ``root/<split>/<class>/**/<file>`` where ``<split>`` is ``train``, ``val``
  (or ``valid``/``validation``) or ``test``; class names are the union over the splits.

Files are every non-hidden regular file below a class folder (any format Pillow opens;
the ones it cannot open are reported later, not silently dropped), sorted by path.

What the walk cannot use never stops it; each is listed in ``FolderLayout.unlisted`` with its
reason: a dangling symlink, a symlink loop (a link to itself, or with ``follow_links=True`` a
folder link back to a folder already walked), a folder that cannot be listed, a FIFO, socket
or device (reading one would block). Hidden names (``.DS_Store``, macOS ``._x.jpg``) are
skipped and counted in ``FolderLayout.hidden``. File names that are not valid UTF-8 load like
any other (Python keeps their bytes as surrogate escapes); ``display_path`` writes them with
``\\xNN`` escapes for printing and reports. A class folder whose name is not valid UTF-8 is
refused: its name would become a class name in saved models and reports.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

__all__ = ["FolderLayout", "FileEntry", "scan_folder", "SPLIT_ALIASES", "FolderLayoutError",
           "display_path"]

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "test", "testing": "test"}


class FolderLayoutError(ValueError):
    """The folder is not ``root/<class>/<images>`` (or ``root/<split>/<class>/<images>``)."""


class FileEntry(NamedTuple):
    path: str        # absolute path (not valid UTF-8: surrogate escapes, see display_path)
    label: int
    size: int
    mtime_ns: int
    ctime_ns: int    # with the inode: what a rewrite changes even when size and mtime are put back
    inode: int


def display_path(path: str) -> str:
    """``path`` printable and writable as UTF-8: bytes that are not UTF-8 become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _has_bad_bytes(name: str) -> bool:
    return display_path(name) != name


@dataclass
class FolderLayout:
    root: Path
    splits: dict[str, Path]              # "train"/"val"/"test" -> folder; {"all": root} if flat
    class_names: list[str]
    files: dict[str, list[FileEntry]]    # split -> entries, sorted by (label, path)
    empty_classes: dict[str, list[str]] = field(default_factory=dict)  # split -> names
    stray_files: list[str] = field(default_factory=list)  # files outside any class folder
    ignored_dirs: list[str] = field(default_factory=list)  # folders beside the splits
    unlisted: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # split -> (path, why)
    hidden: list[str] = field(default_factory=list)  # hidden files skipped inside class folders

    @property
    def is_split(self) -> bool:
        return "all" not in self.splits


def _is_dir(e: os.DirEntry, follow_links: bool) -> bool:
    try:
        return e.is_dir(follow_symlinks=follow_links)
    except OSError:  # a link loop: not a folder we can walk
        return False


def _visible_dirs(folder: Path, follow_links: bool) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".") and _is_dir(e, follow_links)),
                      key=lambda e: e.name)


def _visible_files(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.path for e in it if not e.name.startswith(".") and _regular(e))


def _regular(e: os.DirEntry) -> bool:
    try:
        return e.is_file()
    except OSError:
        return False


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _why_not_a_file(e: os.DirEntry) -> str:
    """The reason an entry that is neither a file nor a walked folder is not used."""
    try:
        st = os.stat(e.path)  # follows links
    except OSError as err:
        if e.is_symlink():
            target = _link_target(e.path)
            if err.errno == errno.ELOOP:
                return f"symlink loop ({display_path(e.name)} -> {target})"
            return f"dangling symlink: its target {target} does not exist"
        return f"cannot read its details ({type(err).__name__}: {err.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "symlinked folder, not followed (pass follow_links=True to read it)"
    kind = next((what for test, what in _KINDS if test(st.st_mode)), "not a regular file")
    return f"{kind}, not an image file"


def _link_target(path: str) -> str:
    try:
        return display_path(os.readlink(path))
    except OSError:
        return "?"


class _Walk:
    """One class folder's files, and what could not be used (with ``follow_links``, each real
    folder is walked once: a link back to one already walked is a loop, not more files)."""

    def __init__(self, follow_links: bool):
        self.follow_links = follow_links
        self.entries: list[FileEntry] = []
        self.unlisted: list[tuple[str, str]] = []
        self.hidden: list[str] = []
        self.seen: set[tuple[int, int]] = set()

    def folder(self, folder: str, label: int) -> None:
        stack = [folder]
        while stack:
            current = stack.pop()
            try:
                st = os.stat(current)
                if (st.st_dev, st.st_ino) in self.seen:
                    self.unlisted.append((current, "symlink loop: a folder already read"))
                    continue
                self.seen.add((st.st_dev, st.st_ino))
                with os.scandir(current) as it:
                    found = list(it)
            except OSError as err:
                self.unlisted.append((current, f"cannot list this folder ({type(err).__name__}: "
                                               f"{err.strerror})"))
                continue
            for e in found:
                if e.name.startswith("."):
                    self.hidden.append(e.path)
                elif _is_dir(e, self.follow_links):
                    stack.append(e.path)
                elif _regular(e):
                    self._add(e, label)
                else:
                    self.unlisted.append((e.path, _why_not_a_file(e)))

    def _add(self, e: os.DirEntry, label: int) -> None:
        try:
            st = e.stat()
        except OSError as err:  # removed since the folder was listed
            self.unlisted.append((e.path, f"cannot read its details ({err.strerror})"))
            return
        self.entries.append(FileEntry(e.path, label, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                      st.st_ino))


def scan_folder(root: str | os.PathLike, class_names: list[str] | None = None,
                follow_links: bool = False) -> FolderLayout:
    """List the layout of ``root``; ``class_names`` fixes the classes and their order."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FolderLayoutError(f"{root} is not a folder")
    top = _visible_dirs(root, follow_links)
    split_dirs = {}
    for e in top:
        alias = SPLIT_ALIASES.get(e.name.lower())
        if alias and alias not in split_dirs and _visible_dirs(Path(e.path), follow_links):
            split_dirs[alias] = Path(e.path)
    ignored: list[str] = []
    if split_dirs:
        ignored = [e.path for e in top if Path(e.path) not in split_dirs.values()]
        splits = dict(sorted(split_dirs.items(), key=lambda kv: ["train", "val", "test"]
                             .index(kv[0])))
    else:
        splits = {"all": root}

    found = sorted({e.name for folder in splits.values()
                    for e in _visible_dirs(folder, follow_links)})
    undecodable = [display_path(n) for n in found if _has_bad_bytes(n)]
    if undecodable:
        raise FolderLayoutError(f"{root}: class folder name(s) {', '.join(undecodable)} are not valid "
                                "UTF-8; rename them (a class name ends up in models and reports)")
    if class_names is None:
        names = found
    else:
        names = [str(c) for c in class_names]
        unknown = [c for c in names if c not in found]
        if unknown:
            raise FolderLayoutError(f"{root}: class_names {unknown} have no folder; "
                                    f"found {found}")
    holders = [root, *(f for f in splits.values() if f != root)]
    stray = [f for folder in holders for f in _visible_files(folder)]
    if not names:
        hint = (f" ({len(stray)} files lie directly in it: move each into a folder named "
                f"after its class)" if stray else "")
        raise FolderLayoutError(f"{root}: no class folders found; images must be in "
                                f"{root}/<class>/... or {root}/<train|val|test>/<class>/...{hint}")

    files: dict[str, list[FileEntry]] = {}
    empty: dict[str, list[str]] = {}
    unlisted: dict[str, list[tuple[str, str]]] = {}
    hidden: list[str] = []
    for split, folder in splits.items():
        entries: list[FileEntry] = []
        for label, name in enumerate(names):
            cdir = folder / name
            walk = _Walk(follow_links)
            if cdir.is_dir():
                walk.folder(str(cdir), label)
            got = sorted(walk.entries, key=lambda f: f.path)
            if not got:
                empty.setdefault(split, []).append(name)
            entries.extend(got)
            if walk.unlisted:
                unlisted.setdefault(split, []).extend(sorted(walk.unlisted))
            hidden += walk.hidden
        files[split] = entries
    return FolderLayout(root, splits, names, files, empty, stray, ignored, unlisted, sorted(hidden))
