"""Argument types for the command line: each checks one kind of value and says, in one line,
what is wrong with it and what to give instead.

They are argparse ``type=`` callables (``p.add_argument("--port", type=cli_args.port)``): a bad
value raises ``argparse.ArgumentTypeError``, which the parser prints as one line with exit
status 2. The ``*_problem`` functions hold the rules themselves, for ``TrainConfig.validate``
(whose settings are the ``train`` options) and the commands that check after loading.

Which errors are the user's (printed as one line, exit 2) is listed here as well:
:data:`USER_ERRORS`.
"""

from __future__ import annotations

import argparse
import re
import tarfile
import zipfile
from pathlib import Path

__all__ = ["positive_int", "non_negative_int", "port", "device", "image_shape", "output_dir",
           "output_file", "export_path", "output_dir_problem", "output_file_problem",
           "EXPORT_SUFFIXES", "USER_ERRORS", "one_line"]

#: export file suffix -> format (cnnkit.export reads the same)
EXPORT_SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript",
                   ".torchscript": "torchscript"}


def _int(text: str, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({what})") from None


def positive_int(text: str) -> int:
    value = _int(text, "give 1 or more")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text, "give 0 or more")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def port(text: str) -> int:
    value = _int(text, "a TCP port, 1-65535")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port: give 1-65535 (e.g. 8000)")
    return value


def device(text: str) -> str:
    """auto, cpu, cuda, cuda:N (one this machine has) or mps."""
    from .utils import device_problem
    problem = device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


def image_shape(text: str) -> tuple[int, int, int]:
    """'H,W' or 'H,W,C' (also 'HxW'): positive sizes, 1, 3 or 4 channels (default 3)."""
    parts = [p for p in re.split(r"[,x ]+", str(text).strip()) if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 2:
        values.append(3)
    if len(values) != 3 or min(values) < 1 or values[2] not in (1, 3, 4):
        raise argparse.ArgumentTypeError(f"{text!r} is not an image shape: give H,W or H,W,C "
                                         "with positive sizes and 1, 3 or 4 channels (e.g. 32,32,3)")
    return tuple(values)


def _file_on_the_way(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is a file, not a folder (or None)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def output_dir_problem(text: str) -> str | None:
    """Why ``text`` cannot be (or be created as) a folder to write into, or None."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        return f"{text} is a file, not a folder: give a folder (it is created if missing)"
    blocker = _file_on_the_way(path)
    if blocker is not None:
        return f"{blocker} is a file, so no folder can be made under it"
    return None


def output_file_problem(text: str) -> str | None:
    """Why ``text`` cannot be written as a file, or None (missing parent folders are made)."""
    path = Path(text).expanduser()
    if path.is_dir():
        return f"{text} is a folder: give a file name (e.g. {Path(text) / 'out.json'})"
    blocker = _file_on_the_way(path)
    if blocker is not None:
        return f"{blocker} is a file, so nothing can be written under it"
    return None


def _checked(problem_of):
    def check(text: str) -> str:
        problem = problem_of(text)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return text
    check.__name__ = problem_of.__name__.replace("_problem", "")
    check.__doc__ = problem_of.__doc__
    return check


output_dir = _checked(output_dir_problem)
output_file = _checked(output_file_problem)


def export_path(text: str) -> str:
    """A file to export to: .onnx (ONNX) or .pt/.ts/.torchscript (TorchScript)."""
    suffix = Path(text).suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text}: unknown export file type {suffix or '(no suffix)'!s}; name it .onnx (ONNX) "
            "or .pt (TorchScript)")
    return output_file(text)


# ------------------------------------------------------------------------------ errors

#: errors that report something about the user's input, files or machine
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, tarfile.TarError, EOFError,
                                                zipfile.BadZipFile)


def one_line(err: BaseException) -> str:
    """An exception's message on one line (the type's name when it has no message)."""
    text = " ".join(str(err).split())
    if isinstance(err, KeyError) and text.startswith(("'", '"')) and text[0] == text[-1]:
        text = text[1:-1]  # KeyError quotes its message
    return text or type(err).__name__
