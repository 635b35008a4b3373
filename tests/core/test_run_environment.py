"""env.json's library versions come from the installed metadata: recording them imports
neither torchvision (which pulls in torch._dynamo, ~2 s) nor matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from cnnkit.run.directory import environment
env = environment(0, "cpu")
print(json.dumps({"env": {k: env.get(k) for k in ("torchvision", "PIL", "matplotlib", "safetensors")},
                  "imported": [m for m in ("torchvision", "matplotlib", "torch._dynamo") if m in sys.modules]}))
"""


def test_versions_are_recorded_without_importing_the_libraries():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["imported"] == []
    import matplotlib
    import PIL
    import safetensors
    import torchvision
    for key, mod in (("torchvision", torchvision), ("PIL", PIL), ("matplotlib", matplotlib),
                     ("safetensors", safetensors)):
        assert got["env"][key] == mod.__version__.split("+")[0] or got["env"][key] == mod.__version__
