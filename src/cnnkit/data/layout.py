"""Find the classes, splits and files of an image folder.

Two layouts are understood:

- flat: ``root/<class>/**/<file>``
- split: ``root/<split>/<class>/**/<file>`` where ``<split>`` is ``train``, ``val``
  (or ``valid``/``validation``) or ``test``; class names are the union over the splits.

Files are every non-hidden regular file below a class folder (any format Pillow opens;
the ones it cannot open are reported later, not silently dropped), sorted by path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

__all__ = ["FolderLayout", "FileEntry", "scan_folder", "SPLIT_ALIASES", "FolderLayoutError"]

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "test", "testing": "test"}


class FolderLayoutError(ValueError):
    """The folder is not ``root/<class>/<images>`` (or ``root/<split>/<class>/<images>``)."""


class FileEntry(NamedTuple):
    path: str        # absolute path
    label: int
    size: int
    mtime_ns: int


@dataclass
class FolderLayout:
    root: Path
    splits: dict[str, Path]              # "train"/"val"/"test" -> folder; {"all": root} if flat
    class_names: list[str]
    files: dict[str, list[FileEntry]]    # split -> entries, sorted by (label, path)
    empty_classes: dict[str, list[str]] = field(default_factory=dict)  # split -> names
    stray_files: list[str] = field(default_factory=list)  # files outside any class folder
    ignored_dirs: list[str] = field(default_factory=list)  # folders beside the splits

    @property
    def is_split(self) -> bool:
        return "all" not in self.splits


def _visible_dirs(folder: Path, follow_links: bool) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")
                       and e.is_dir(follow_symlinks=follow_links)), key=lambda e: e.name)


def _visible_files(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.path for e in it if not e.name.startswith(".") and e.is_file())


def _walk_class(folder: Path, label: int, follow_links: bool) -> list[FileEntry]:
    out = []
    stack = [str(folder)]
    while stack:
        current = stack.pop()
        with os.scandir(current) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                if e.is_dir(follow_symlinks=follow_links):
                    stack.append(e.path)
                elif e.is_file():
                    st = e.stat()
                    out.append(FileEntry(e.path, label, st.st_size, st.st_mtime_ns))
    out.sort(key=lambda f: f.path)
    return out


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
    for split, folder in splits.items():
        entries: list[FileEntry] = []
        for label, name in enumerate(names):
            cdir = folder / name
            got = _walk_class(cdir, label, follow_links) if cdir.is_dir() else []
            if not got:
                empty.setdefault(split, []).append(name)
            entries.extend(got)
        files[split] = entries
    return FolderLayout(root, splits, names, files, empty, stray, ignored)
