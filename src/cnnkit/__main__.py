"""``python -m cnnkit`` (and ``torchrun -m cnnkit``) runs the command line."""

import sys

from .cli import main

sys.exit(main())
