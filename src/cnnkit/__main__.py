"""``python -m cnnkit`` (and ``torchrun -m cnnkit``) runs the command line."""

from .cli import entry

entry()
