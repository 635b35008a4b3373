"""Health check of an image folder: what ``cnnkit check PATH`` prints.

``check_dataset(path)`` reads every file once (in threads) and reports class counts and
imbalance, unreadable files (empty, not an image, truncated, corrupt), files whose content
is not what their extension says, odd colour modes, image sizes, exact duplicates (same
bytes), duplicates shared between splits (leakage) and duplicates filed under different
classes. ``report.summary()`` is the readable text; ``report.write_bad_files(path)`` a
tab-separated list of the files to look at.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import warnings
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from . import decode_pool
from .decode import sniff_format
from .layout import FolderLayoutError, display_path, scan_folder

__all__ = ["check_dataset", "CheckReport", "FileProblem", "inspect_file", "main_check"]

# extension -> formats Pillow reports for such content
EXTENSION_FORMATS = {
    ".jpg": {"JPEG", "MPO"}, ".jpeg": {"JPEG", "MPO"}, ".jpe": {"JPEG", "MPO"},
    ".jfif": {"JPEG"}, ".png": {"PNG"}, ".gif": {"GIF"}, ".bmp": {"BMP", "DIB"},
    ".dib": {"DIB", "BMP"}, ".tif": {"TIFF"}, ".tiff": {"TIFF"}, ".webp": {"WEBP"},
    ".ppm": {"PPM"}, ".pgm": {"PPM"}, ".pbm": {"PPM"}, ".pnm": {"PPM"}, ".ico": {"ICO"},
    ".tga": {"TGA"}, ".jp2": {"JPEG2000"}, ".avif": {"AVIF"},
}
PLAIN_MODES = {"RGB", "L"}
UNREADABLE = ("empty", "not_image", "truncated", "corrupt")
_LABELS = {"empty": "empty file", "not_image": "not an image", "truncated": "truncated",
           "corrupt": "corrupt", "extension_mismatch": "content does not match extension",
           "unknown_extension": "unusual extension", "odd_mode": "odd colour mode",
           "duplicate": "exact duplicate", "leakage": "duplicate across splits",
           "label_conflict": "duplicate under another class",
           "not_read": "not read (link, loop, special file)",
           "bad_name": "name not valid UTF-8 (shown escaped)"}


@dataclass
class FileProblem:
    path: str
    kind: str       # one of _LABELS
    detail: str = ""


@dataclass
class FileInfo:
    path: str
    size: int
    digest: str | None = None
    format: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None
    error: str | None = None      # one of UNREADABLE
    detail: str = ""


def inspect_file(path: str | os.PathLike) -> FileInfo:
    """Read one file: size, content hash, format, mode, size, and what is wrong with it."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return FileInfo(path, 0, error="corrupt", detail=f"cannot read: {e}")
    info = FileInfo(path, len(data), hashlib.blake2b(data, digest_size=16).hexdigest())
    if not data:
        info.error, info.detail = "empty", "0 bytes"
        return info
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                info.format, info.mode = img.format, img.mode
                info.width, info.height = img.size
                img.load()
    except UnidentifiedImageError:
        announced = sniff_format(data[:16])
        if announced:
            info.error, info.detail = "corrupt", f"starts like {announced} but cannot be read"
        else:
            info.error, info.detail = "not_image", "Pillow cannot identify it as an image"
    except Exception as e:  # noqa: BLE001 - every decoder failure is a finding
        msg = str(e) or type(e).__name__
        info.error = "truncated" if "truncat" in msg.lower() else "corrupt"
        info.detail = f"{type(e).__name__}: {msg}"
    return info


def _inspect_files(paths: list[str]) -> list[FileInfo]:
    return [inspect_file(p) for p in paths]


def imbalance_ratio(counts) -> float | None:
    """Images in the largest class / in the smallest (inf: a class is empty; None: no images).
    ``cnnkit check`` reports it per split; ``fit`` warns when it is large."""
    values = list(counts)
    if not values or max(values) == 0:
        return None
    return float("inf") if min(values) == 0 else max(values) / min(values)


@dataclass
class CheckReport:
    """The findings of ``check_dataset``; ``summary()`` prints them."""

    root: str
    splits: list[str]                           # ["all"] for a flat folder
    class_names: list[str]
    counts: dict[str, dict[str, int]]           # split -> class -> readable images
    files_total: int
    readable: int
    problems: list[FileProblem] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)            # "H×W" -> images
    duplicates: list[list[str]] = field(default_factory=list)       # groups, same bytes
    cross_split_duplicates: list[list[str]] = field(default_factory=list)
    label_conflicts: list[list[str]] = field(default_factory=list)
    empty_classes: dict[str, list[str]] = field(default_factory=dict)
    missing_splits: list[str] = field(default_factory=list)
    stray_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -- derived views
    def of_kind(self, *kinds: str) -> list[FileProblem]:
        return [p for p in self.problems if p.kind in kinds]

    @property
    def unreadable(self) -> list[FileProblem]:
        return self.of_kind(*UNREADABLE)

    @property
    def truncated(self) -> list[FileProblem]:
        return self.of_kind("truncated")

    @property
    def extension_mismatches(self) -> list[FileProblem]:
        return self.of_kind("extension_mismatch")

    @property
    def odd_modes(self) -> list[FileProblem]:
        return self.of_kind("odd_mode")

    def imbalance(self) -> dict[str, float]:
        """Per split: largest class / smallest class (inf: a class is empty)."""
        ratios = {split: imbalance_ratio(counts.values()) for split, counts in self.counts.items()}
        return {split: r for split, r in ratios.items() if r is not None}

    @property
    def imbalance_ratio(self) -> float:
        """The largest of the per-split ratios (1.0 is perfectly balanced)."""
        return max(self.imbalance().values(), default=1.0)

    @property
    def ok(self) -> bool:
        """No unreadable files, no leakage, no conflicting labels, at least two classes."""
        return not (self.unreadable or self.cross_split_duplicates or self.label_conflicts
                    or len(self.class_names) < 2)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["imbalance"] = self.imbalance()
        d["ok"] = self.ok
        return d

    def write_bad_files(self, path: str | os.PathLike) -> Path:
        """Write ``path<TAB>problem<TAB>detail`` lines, one per finding, sorted by path."""
        path = Path(path)
        lines = ["path\tproblem\tdetail"]
        lines += [f"{_tsv(p.path)}\t{p.kind}\t{_tsv(p.detail)}"
                  for p in sorted(self.problems, key=lambda p: (p.path, p.kind))]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def summary(self) -> str:
        out = [f"cnnkit check {self.root}"]
        flat = self.splits == ["all"]
        out.append("layout: " + ("<class>/<images>" if flat else
                                 "splits " + ", ".join(f"{s}/" for s in self.splits)))
        out.append(f"{len(self.class_names)} classes, {self.files_total} files, "
                   f"{self.readable} readable images")
        out += self._count_table()
        ratios = self.imbalance()
        if ratios:
            out.append("imbalance (largest/smallest class): " + ", ".join(
                f"{'' if flat else s + ' '}{r:.2f}" for s, r in ratios.items()))
        if self.modes:
            out.append("colour modes: " + ", ".join(f"{m} {n}" for m, n in
                                                   Counter(self.modes).most_common()))
        if self.formats:
            out.append("formats: " + ", ".join(f"{m} {n}" for m, n in
                                              Counter(self.formats).most_common()))
        if self.sizes:
            top = Counter(self.sizes).most_common(5)
            more = f" (+{len(self.sizes) - 5} more sizes)" if len(self.sizes) > 5 else ""
            out.append("image sizes (H×W): " + ", ".join(f"{s} {n}" for s, n in top) + more)
        out.append("")
        findings = Counter(p.kind for p in self.problems)
        if findings:
            out.append("findings:")
            for kind in _LABELS:
                if findings.get(kind):
                    examples = [p for p in self.problems if p.kind == kind][:3]
                    out.append(f"  {_LABELS[kind]}: {findings[kind]}")
                    out += [f"    {self._rel(p.path)}  ({display_path(p.detail)})" if p.detail
                            else f"    {self._rel(p.path)}" for p in examples]
        if self.duplicates:
            n_files = sum(len(g) for g in self.duplicates)
            out.append(f"exact duplicates: {len(self.duplicates)} groups, {n_files} files")
        if self.cross_split_duplicates:
            n = len(self.cross_split_duplicates)
            out.append(f"LEAKAGE: {n} image{'s' if n > 1 else ''} in more than one split, "
                       "e.g. " + " = ".join(map(self._rel, self.cross_split_duplicates[0])))
        if self.label_conflicts:
            n = len(self.label_conflicts)
            out.append(f"label conflicts: {n} image{'s' if n > 1 else ''} filed under more "
                       "than one class, e.g. " + " = ".join(map(self._rel,
                                                              self.label_conflicts[0])))
        out += [f"note: {display_path(n)}" for n in self.notes]
        out.append("")
        out.append("verdict: " + ("OK" if self.ok and not self.problems else
                                  "usable, see the findings above" if self.ok else
                                  "PROBLEMS: fix the findings above before training"))
        return "\n".join(out)

    def _rel(self, path: str) -> str:
        try:
            return display_path(str(Path(path).relative_to(self.root)))
        except ValueError:
            return display_path(path)

    def _count_table(self) -> list[str]:
        if not self.class_names:
            return []
        splits = list(self.counts)
        width = max(len(c) for c in [*self.class_names, "total"])
        head = " " * width + "".join(f"{s:>9}" for s in splits)
        rows = [f"{c:<{width}}" + "".join(f"{self.counts[s].get(c, 0):>9}" for s in splits)
                for c in self.class_names]
        total = f"{'total':<{width}}" + "".join(f"{sum(self.counts[s].values()):>9}"
                                                for s in splits)
        return [head, *rows, total]


def _tsv(text: str) -> str:
    """One TSV field: not-UTF-8 bytes as \\xNN, tabs and newlines escaped."""
    return display_path(text).replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def check_dataset(path: str | os.PathLike, *, duplicates: bool = True,
                  workers: int | None = None, follow_links: bool = False) -> CheckReport:
    """Inspect every file of the image folder at ``path`` and return a ``CheckReport``."""
    layout = scan_folder(path, follow_links=follow_links)
    entries = [(split, e) for split, es in layout.files.items() for e in es]
    # worker processes: reading small images is mostly Python under the GIL (decode_pool.py)
    parts = decode_pool.chunked((e.path for _, e in entries), workers)
    infos = [info for part in decode_pool.imap_chunks(_inspect_files, parts, workers)
             for info in part]

    report = CheckReport(
        root=str(layout.root), splits=list(layout.splits), class_names=layout.class_names,
        counts={s: {c: 0 for c in layout.class_names} for s in layout.splits},
        files_total=len(entries), readable=0, empty_classes=dict(layout.empty_classes),
        stray_files=list(layout.stray_files))
    for split, unread in layout.unlisted.items():
        report.problems += [FileProblem(path, "not_read", why) for path, why in unread]
    report.problems += [FileProblem(e.path, "bad_name", "rename it; the image itself was read")
                        for _, e in entries if display_path(e.path) != e.path]
    modes, formats, sizes = Counter(), Counter(), Counter()
    by_digest: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for (split, entry), info in zip(entries, infos):
        if info.error:
            report.problems.append(FileProblem(info.path, info.error, info.detail))
            continue
        report.readable += 1
        report.counts[split][layout.class_names[entry.label]] += 1
        modes[info.mode] += 1
        formats[info.format] += 1
        sizes[f"{info.height}×{info.width}"] += 1
        ext = os.path.splitext(info.path)[1].lower()
        expected = EXTENSION_FORMATS.get(ext)
        if expected is None:
            report.problems.append(FileProblem(
                info.path, "unknown_extension", f"extension {ext or '(none)'!r}, content "
                f"{info.format}"))
        elif info.format not in expected:
            report.problems.append(FileProblem(
                info.path, "extension_mismatch", f"named {ext} but holds {info.format}"))
        if info.mode not in PLAIN_MODES:
            report.problems.append(FileProblem(info.path, "odd_mode", f"mode {info.mode}"))
        if duplicates:
            by_digest[info.digest].append((info.path, split, entry.label))
    report.modes, report.formats, report.sizes = dict(modes), dict(formats), dict(sizes)

    for group in by_digest.values():
        if len(group) < 2:
            continue
        paths = [p for p, _, _ in group]
        report.duplicates.append(paths)
        for p in paths[1:]:
            report.problems.append(FileProblem(p, "duplicate", f"same bytes as {paths[0]}"))
        if len({s for _, s, _ in group}) > 1:
            report.cross_split_duplicates.append(paths)
            for p, s, _ in group:
                in_splits = ", ".join(sorted({s2 for _, s2, _ in group}))
                report.problems.append(FileProblem(p, "leakage", f"same image in splits "
                                                   f"{in_splits}"))
        if len({lab for _, _, lab in group}) > 1:
            report.label_conflicts.append(paths)
            names = sorted({layout.class_names[lab] for _, _, lab in group})
            for p in paths:
                report.problems.append(FileProblem(p, "label_conflict",
                                                   f"same image filed as {', '.join(names)}"))
    _add_notes(report, layout, modes)
    return report


def _add_notes(report: CheckReport, layout, modes: Counter) -> None:
    notes = report.notes
    if len(layout.class_names) == 1:
        notes.append(f"only one class ({layout.class_names[0]!r}): a classifier needs at "
                     "least two class folders")
    for split, names in layout.empty_classes.items():
        where = "" if split == "all" else f" in {split}/"
        notes.append(f"empty class folder(s){where}: {', '.join(names)}")
    if layout.is_split:
        missing = [s for s in ("train", "val", "test") if s not in layout.splits]
        report.missing_splits = missing
        if "train" in missing:
            notes.append("no train/ split: training needs one")
        elif missing:
            notes.append(f"no {' or '.join(s + '/' for s in missing)} split: hold out part of "
                         "train/ (validation_split=0.2)")
    if layout.ignored_dirs:
        notes.append(f"folders beside the splits are ignored: {', '.join(layout.ignored_dirs)}")
    if layout.hidden:
        notes.append(f"{len(layout.hidden)} hidden files (names starting with '.') in the class "
                     f"folders are skipped, e.g. {layout.hidden[0]}")
    if layout.stray_files:
        notes.append(f"{len(layout.stray_files)} files lie outside any class folder and are "
                     f"ignored, e.g. {layout.stray_files[0]}")
    if {"RGB", "L"} <= set(modes):
        notes.append(f"mixed colour: {modes['RGB']} RGB and {modes['L']} grayscale images; "
                     "loading converts all to the color_mode you choose")
    if len(report.sizes) > 1:
        notes.append(f"{len(report.sizes)} different image sizes: loading resizes them "
                     "(image_size=(H, W))")


def main_check(argv: list[str] | None = None) -> int:
    """``cnnkit check PATH [--bad-files FILE] [--json FILE]``; exit 0 when OK, 1 with problems,
    2 when the folder cannot be read as a dataset."""
    parser = argparse.ArgumentParser(prog="cnnkit check",
                                     description="Check an image folder for problems.")
    parser.add_argument("path", help="root/<class>/<images> or root/<split>/<class>/<images>")
    parser.add_argument("--bad-files", metavar="FILE",
                        help="write the files with findings (TSV: path, problem, detail)")
    parser.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    parser.add_argument("--no-duplicates", action="store_true",
                        help="skip the duplicate search")
    parser.add_argument("--workers", type=int, default=None, help="reader threads")
    args = parser.parse_args(argv)
    try:
        report = check_dataset(args.path, duplicates=not args.no_duplicates,
                               workers=args.workers)
    except FolderLayoutError as e:
        print(f"cnnkit check: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    if args.bad_files:
        print(f"bad files written to {report.write_bad_files(args.bad_files)}")
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return 0 if report.ok else 1
