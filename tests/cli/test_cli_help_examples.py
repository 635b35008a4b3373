"""Every example in every ``--help`` runs as written (issue 13 item 17).

The examples are read from the help text itself (what a user copies), parsed with the real
parser, and every name in them is looked up: zoo models in the registry, recipes, dataset
names, augmentation specs, model patterns. The examples that need no run directory or data
(``summary ZOO_NAME``, ``models``) are run. A future example that names a model, option or
recipe that does not exist fails here.
"""

from __future__ import annotations

import fnmatch
import re
import shlex

import pytest

from cnnkit.cli import build_parser, main

PLACEHOLDER = re.compile(r"^[A-Z][A-Z_|]*$")  # MODEL, PATH, NAME|PATH: words to fill in


def _commands(text: str) -> list[list[str]]:
    """The ``cnnkit ...`` command lines of a help text (comments and ``|`` lists split off)."""
    found = []
    for line in text.splitlines():
        for part in line.strip().split(" | "):
            if part.startswith("cnnkit "):
                found.append(shlex.split(part, comments=True))
    return found


def help_examples() -> list[tuple[str, list[str]]]:
    parser = build_parser()
    examples = [("cnnkit --help", words) for words in _commands(parser.format_help())]
    for name, sub in parser.subcommands.items():
        help_text = sub.format_help()
        assert "examples:" in help_text, f"`cnnkit {name} --help` shows no examples"
        examples += [(f"cnnkit {name} --help", words) for words in _commands(help_text)]
    return examples


EXAMPLES = help_examples()


def _is_path(value: str) -> bool:
    return "/" in value or value.startswith(".") or bool(PLACEHOLDER.match(value))


def _check_names(command: str, ns) -> list[str]:
    """What in the parsed example names something that does not exist."""
    from cnnkit import recipes
    from cnnkit.data import datasets
    from cnnkit.data.augment import parse_augment_spec
    from cnnkit.models import registry
    wrong = []
    zoo = registry.list_models()
    model = getattr(ns, "model", None)
    if command in ("train", "summary") and model and not _is_path(model) and model not in zoo:
        wrong.append(f"model {model!r} is not in the zoo ({', '.join(zoo)})")
    recipe = getattr(ns, "recipe", None)
    if recipe and recipe not in recipes.names():
        wrong.append(f"recipe {recipe!r} does not exist ({', '.join(recipes.names())})")
    data = getattr(ns, "data", None)
    if data and not _is_path(data) and data not in datasets.available():
        wrong.append(f"dataset {data!r} does not exist ({', '.join(datasets.available())})")
    augment = getattr(ns, "augment", None)
    if augment:
        try:
            parse_augment_spec(augment)
        except (ValueError, KeyError) as err:
            wrong.append(f"--augment {augment!r}: {err}")
    pattern = getattr(ns, "pattern", None)
    if command == "models" and pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        if not fnmatch.filter(zoo, glob):
            wrong.append(f"pattern {pattern!r} matches no model")
    return wrong


def test_every_command_has_examples():
    shown = {words[1] for _, words in EXAMPLES if len(words) > 1}
    assert set(build_parser().subcommands) <= shown


@pytest.mark.parametrize("where,words", EXAMPLES, ids=[" ".join(w) for _, w in EXAMPLES])
def test_help_example_parses_and_names_what_exists(where, words):
    parser = build_parser()
    try:
        ns, extra = parser.parse_known_args(words[1:])
    except SystemExit:
        pytest.fail(f"{where}: `{' '.join(words)}` does not parse")
    assert not extra, f"{where}: `{' '.join(words)}`: unknown options {extra}"
    assert not _check_names(ns.command, ns), f"{where}: `{' '.join(words)}`: " \
        + "; ".join(_check_names(ns.command, ns))


RUNNABLE = [w for _, w in EXAMPLES if len(w) > 1 and (
    w[1] == "models" or (w[1] == "summary" and not _is_path(w[2])))]


@pytest.mark.parametrize("words", RUNNABLE, ids=[" ".join(w) for w in RUNNABLE])
def test_help_examples_that_need_no_files_run(words, capsys):
    assert main(words[1:]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip()


def test_a_bad_example_would_be_caught():
    """The checks above are not vacuous: the example this issue found is refused."""
    ns, _ = build_parser().parse_known_args(["train", "--data", "cifar10", "--model", "resnet9"])
    assert _check_names("train", ns) and "resnet9" in _check_names("train", ns)[0]
