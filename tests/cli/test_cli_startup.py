"""The command line starts fast: ``--help`` of cnnkit and of every command returns without
importing torch, and ``cnnkit train``'s options are generated from ``TrainConfig``'s fields."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

from cli_helpers import cnnkit_env

PROBE = """
import json, sys
from cnnkit.cli import build_parser, main
commands = sorted(build_parser().subcommands)
leaked = {}
for argv in [["--help"]] + [[c, "--help"] for c in commands]:
    try:
        main(argv)
    except SystemExit:
        pass
    if "torch" in sys.modules:
        leaked[" ".join(argv)] = True
        break
print(json.dumps({"commands": commands, "leaked": leaked}), file=sys.stderr)
"""


def test_help_of_every_command_does_not_import_torch():
    proc = subprocess.run([sys.executable, "-c", PROBE], env=cnnkit_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    assert {"train", "evaluate", "predict", "export", "serve"} <= set(result["commands"])
    assert result["leaked"] == {}, f"torch was imported by: {result['leaked']}"


def test_import_cnnkit_is_lazy_and_names_still_resolve():
    code = ("import sys, cnnkit; lazy = 'torch' not in sys.modules; "
            "from cnnkit import Sequential, layers, load_model; "
            "print(lazy, Sequential.__name__, hasattr(layers, 'Dense'), callable(load_model))")
    out = subprocess.run([sys.executable, "-c", code], env=cnnkit_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == ["True", "Sequential", "True", "True"], out.stderr


def test_train_options_are_generated_from_trainconfig(capsys):
    from cnnkit.cli import build_parser
    from cnnkit.config import TrainConfig
    parser = build_parser()
    train = parser.subcommands["train"]
    dests = {a.dest: a for a in train._actions}
    text = train.format_help()
    for f in dataclasses.fields(TrainConfig):
        assert f.name in dests, f"no option for TrainConfig.{f.name}"
        doc = f.metadata["doc"]
        assert doc.split()[0] in text
        if f.metadata.get("unit"):
            assert f"[{f.metadata['unit']}]" in " ".join(text.split())
        if f.metadata.get("choices"):
            assert list(dests[f.name].choices) == list(f.metadata["choices"])
    assert "--no-report" in text and "--learning-rate" in text
    args = parser.parse_args(["train", "--batch-size", "8", "--image-size", "32,32", "--no-report"])
    cfg = TrainConfig().update({k: v for k, v in vars(args).items()
                                if k in TrainConfig.names()})
    assert (cfg.batch_size, cfg.image_size, cfg.report) == (8, [32, 32], False)
