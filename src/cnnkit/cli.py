"""The cnnkit command line.

    cnnkit train                                  # the default model on the bundled digits, offline
    cnnkit train --data PATH --model simple-cnn   # your folder of class folders
    cnnkit evaluate runs/NAME                     # a run's best model on its test images
    cnnkit predict runs/NAME photo.jpg pics/      # top classes for images
    cnnkit summary MODEL | cnnkit models | cnnkit check PATH
    cnnkit report runs/NAME | explain | export | serve
    cnnkit runs [DIR] | cnnkit compare RUN RUN ...  # list runs; curves and settings side by side

`cnnkit COMMAND --help` explains each command, with examples.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import json
import os
import re
import shlex
import sys
import warnings
from pathlib import Path

from . import cli_args as A

__all__ = ["main", "build_parser"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class CliError(Exception):
    """A user error: printed as 'cnnkit COMMAND: message', exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse that lists the valid options (and the closest one) for an unknown option.

    Abbreviations are off: ``--epoch`` is an error that suggests ``--epochs``, not a guess."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        match = re.search(r"unrecognized arguments: (.*)", message)
        if match:
            options = sorted({o for a in self._actions for o in a.option_strings})
            parts = [f"{self.prog}: unknown option(s): {match.group(1)}"]
            for word in shlex.split(match.group(1)):
                if word.startswith("-"):
                    close = difflib.get_close_matches(word.split("=")[0], options, n=2)
                    if close:
                        parts.append(f"{word}: did you mean {' or '.join(close)}?")
            parts.append(f"valid options: {' '.join(options)}")
            self.exit(2, "; ".join(parts) + f"; see `{self.prog} --help`\n")
        # one line (no usage block): what is wrong, and where the help is
        self.exit(2, f"{self.prog}: {message}; see `{self.prog} --help`\n")


def _sub(sub, name: str, help: str, description: str, examples: str) -> Parser:
    p = sub.add_parser(name, help=help, description=description,
                       epilog="examples:\n" + examples.strip("\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    return p


# ------------------------------------------------------------------------------- helpers

def _resolve_model_path(target: str, weights: str = "best") -> Path:
    """A run directory (-> its best/ or last/ model), or a model folder."""
    path = Path(target).expanduser()
    if not path.exists():
        raise CliError(f"{target}: no such run directory or model folder")
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return path
    if path.is_file() and path.suffix.lower() in (".keras", ".h5", ".hdf5"):  # a Keras file
        return path
    for choice in (weights, "last" if weights == "best" else "best"):
        if (path / choice / "config.json").is_file():
            return path / choice
    raise CliError(f"{target}: not a run directory (with best/ or last/) nor a model folder "
                   "(config.json + model.safetensors)")


def _load_model(target: str, weights: str = "best", device: str | None = None):
    from .models.saving import ModelFileError, load_model
    path = _resolve_model_path(target, weights)
    try:
        model = load_model(path, device=None if device in (None, "auto") else device)
    except ModelFileError as err:
        raise CliError(str(err)) from err
    return model, path


def _expand_images(items: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders (searched recursively for images) and globs -> (files, problems)."""
    files, problems = [], []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append((item, "folder holds no image files"))
            files += found
        elif path.is_file():
            files.append(path)
        elif any(c in item for c in "*?["):
            matched = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matched:
                problems.append((item, "pattern matches no files"))
            files += matched
        else:
            problems.append((item, "no such file or folder"))
    return files, problems


# ------------------------------------------------------------------------------- train

_TRAIN_EXAMPLES = """
  cnnkit train                                    # default model, bundled 28x28 digits, offline
  cnnkit train --data ../shared/datasets/cifar10-jpeg/train --model simple-cnn --epochs 10
  cnnkit train --data cifar10 --model resnet-cifar --augment flip,crop=4 --schedule cosine
  cnnkit train --data mnist --data-dir ../shared/datasets/mnist --epochs 3
  cnnkit train --config run.toml --epochs 20      # a TOML/YAML file; the command line wins
  cnnkit train --resume runs/bundled-mnist-2conv  # continue an interrupted run (Ctrl-C, kill)
  cnnkit train --data cifar10 --recipe fast --nproc 2   # a speed recipe, data-parallel
  cnnkit train --data cifar10 --model resnet-cifar --batch-size 256 --nproc 2  # any run, data-parallel

Each run writes runs/<name>/ (never overwritten: <name>-2, -3, ...): config.json/.toml,
command.txt, env.json, history.csv, metrics.json, best/ and last/ models, checkpoint/,
plots/ and report.html. Ctrl-C finishes the current step, saves last/ and a checkpoint,
and prints the command that resumes.
"""


def build_train_parser(sub) -> Parser:
    p = _sub(sub, "train", "train a model and write a run directory with its report",
             "Train a CNN image classifier and write a run directory: config, command, "
             "environment, history, metrics, best/last models, checkpoint, plots and "
             "report.html. Every option can also come from --config FILE.", _TRAIN_EXAMPLES)
    from .cli_train import add_config_options
    g = add_config_options(p)["run"]  # one option per TrainConfig field, with its doc and unit
    g.add_argument("--config", metavar="FILE", help="read settings from a TOML or YAML file "
                   "(flat, or under [train]); options on the command line win")
    g.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train data-parallel on N local processes (torchrun; gradients "
                   "averaged over the ranks); --batch-size is the global batch, rank 0 writes "
                   "the run directory. A run resumes on as many processes as it trained on")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its "
                   "checkpoint (only --epochs may change)")
    p.set_defaults(func=cmd_train)
    return p


def cmd_train(args) -> int:
    from .config import ConfigError, TrainConfig, load_config_file
    from .experiment import DataError, UnknownModelName, train
    skip = ("func", "command", "config", "resume", "_argv", "nproc")
    given = {k: v for k, v in vars(args).items() if k not in skip}
    argv = ["cnnkit", *getattr(args, "_argv", [])]
    in_job = int(os.environ.get("WORLD_SIZE", "1")) > 1  # already a rank under torchrun
    if args.nproc is not None and args.nproc < 1:
        raise CliError(f"--nproc {args.nproc}: give a number of processes >= 1")
    try:
        if args.resume:
            extra = sorted(set(given) - {"epochs"})
            if extra or args.config:
                raise CliError("--resume continues a run with its own settings; only --epochs can "
                               f"change (remove {' '.join('--' + e.replace('_', '-') for e in extra) or '--config'})")
            if not in_job:
                world = _checkpoint_world(args.resume)
                if args.nproc is not None and world is not None and args.nproc != world:
                    raise CliError(
                        f"{args.resume} trained on {world} process{'es' if world > 1 else ''}: "
                        f"resume it on the same number (--nproc {world}); another number gives "
                        "each process other batches, so the training could not continue as it was")
                nproc = args.nproc or world or 1
                if nproc > 1:
                    return _launch(args, nproc)
            result = train(resume=args.resume, epochs=given.get("epochs"))
        else:
            cfg = TrainConfig()
            if args.config:
                cfg.update(load_config_file(args.config), args.config)
            cfg.update(given, "command line")
            if args.nproc and args.nproc > 1 and not in_job:
                cfg.validate()
                return _launch(args, args.nproc)
            result = train(cfg, argv=argv)
    except (ConfigError, DataError, UnknownModelName, FileNotFoundError, ValueError) as err:
        raise CliError(str(err)) from err
    return 130 if result.interrupted else 0


def _checkpoint_world(run_dir: str) -> int | None:
    """How many processes the run in ``run_dir`` trained on, from its checkpoint (None: none)."""
    state = Path(run_dir) / "checkpoint" / "state.json"
    try:
        return int(json.loads(state.read_text()).get("world_size", 1))
    except (OSError, ValueError, TypeError, AttributeError):
        return None  # train() says what is wrong with it


def _launch(args, nproc: int) -> int:
    """``--nproc N`` (or resuming a run that trained on N): this same command on N processes
    under torchrun (without --nproc); rank 0 writes the run directory."""
    from . import distributed
    argv, skip = [], False
    for a in args._argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    return distributed.launch(nproc, argv)


# ------------------------------------------------------------------------------- evaluate

def _reported_weights(target: str) -> str:
    """Which weights a run's metrics.json reports ('best' or 'last'; 'best' when unsaid)."""
    try:
        return json.loads((Path(target) / "metrics.json").read_text()).get("weights", "best")
    except (OSError, ValueError, AttributeError):
        return "best"


def cmd_evaluate(args) -> int:
    from .config import TrainConfig
    from .experiment import DataError, compile_model, load_data
    from .run.evaluate import evaluate
    from .runs import RunDir
    weights = args.weights or _reported_weights(args.target)
    model, path = _load_model(args.target, weights, args.device)
    run = RunDir(args.target)
    if args.data:
        h, w, c = model.input_shape
        folder = Path(args.data).expanduser().is_dir() or args.data.lower().endswith(".csv")
        cfg = TrainConfig(data=args.data, data_dir=args.data_dir or "", image_size=[h, w],
                          grayscale=c == 1, val_split=0.0 if folder else 0.1,
                          multi_label=bool(model.multi_label))
    elif run.is_run():
        cfg = TrainConfig.from_dict(run.read_json(run.config_json))  # the run's own split
    else:
        raise CliError(f"{args.target} is a model folder, not a run: pass --data NAME|PATH")
    cfg.device = args.device or cfg.device
    try:
        data = load_data(cfg.validate())
    except DataError as err:
        raise CliError(str(err)) from err
    if data.test is not None:
        split, where = data.test, f"the test split of {data.source}"
    elif args.data and folder:  # a folder or a labels CSV: all of it
        split, where = data.train, f"all of {args.data}"
    else:
        split, where = data.val, f"validation images held out from {data.source}, seed {cfg.seed}"
    if split is None or not len(split[0]):
        raise CliError(f"no labelled images to evaluate on in {data.source}")
    names = model.class_names or data.class_names
    if len(names) != len(data.class_names):
        raise CliError(f"the model has {len(names)} classes but the data {len(data.class_names)}")
    if not cfg.recipe:
        compile_model(model, cfg)
    else:  # a recipe's loss and precision, as it trained and was evaluated
        from . import recipes
        from .train.losses import SparseCategoricalCrossentropy
        from .utils import pick_device
        device = pick_device(None if cfg.device == "auto" else cfg.device)
        recipe = recipes.get(cfg.recipe).resolve(device)
        model.compile(optimizer="sgd", metrics=["accuracy"], device=device,
                      loss=SparseCategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                      precision=recipe.precision)
    # a run's own test-time augmentation by default, so the number is metrics.json's
    tta = args.tta or (cfg.tta if run.is_run() else "none")
    ev = evaluate(model, *split, batch_size=args.batch_size, per_sample=True, class_names=names,
                  thresholds=model.thresholds, tta=tta)  # multi-label: the stored thresholds
    used = path.name if path.name in ("best", "last") else "model folder"
    if data.multi_label:
        return _print_multilabel_evaluation(args, path, used, where, split, ev)
    from .run.report import tta_record
    out = {"model": str(path), "weights": used, "evaluated_on": where,
           "images": int(len(split[0])), "loss": ev["loss"], "accuracy": ev["accuracy"],
           **tta_record(tta),
           **{k: v for k, v in ev["report"].items() if k != "accuracy"}}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        tta_note = f", test-time augmentation: {tta}" if tta != "none" else ""
        print(f"{path} ({used} weights): accuracy {ev['accuracy']:.4f}, loss {ev['loss']:.4f} on "
              f"{len(split[0])} images ({where}{tta_note})")
        print(_per_class_table(ev["report"]))
    if args.output:
        Path(args.output).expanduser().parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).expanduser().write_text(json.dumps(out, indent=2))
        print(f"metrics written to {args.output}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _print_multilabel_evaluation(args, path, used, where, split, ev) -> int:
    report = ev["report"]
    out = {"model": str(path), "weights": used, "evaluated_on": where,
           "images": int(len(split[0])), "loss": ev["loss"], **report}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{path} ({used} weights): mAP {report['map']:.4f}, macro F1 {report['macro_f1']:.4f}"
              f" at its thresholds, exact match {report['exact_match']:.4f}, loss "
              f"{ev['loss']:.4f} on {len(split[0])} images ({where})")
        width = max([len(c) for c in report["per_label"]] + [5])
        print(f"{'label':<{width}}     AP  threshold  precision  recall     f1  support")
        for c, v in report["per_label"].items():
            ap = f"{v['ap']:6.3f}" if v["ap"] is not None else "     -"
            print(f"{c:<{width}}  {ap}  {v['threshold']:9.3f}  {v['precision']:9.3f}  "
                  f"{v['recall']:6.3f}  {v['f1']:5.3f}  {v['support']:7d}")
    if args.output:
        Path(args.output).expanduser().parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).expanduser().write_text(json.dumps(out, indent=2))
    return 0


def _per_class_table(report: dict) -> str:
    width = max([len(c) for c in report["per_class"]] + [13])
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for c, v in report["per_class"].items():
        lines.append(f"{c:<{width}}  {v['precision']:9.3f}  {v['recall']:6.3f}  {v['f1']:5.3f}  {v['support']:7d}")
    lines.append(f"{'macro average':<{width}}  {report['macro_precision']:9.3f}  "
                 f"{report['macro_recall']:6.3f}  {report['macro_f1']:5.3f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- predict

def _decode(path: Path, shape):
    from .data.decode import decode_image
    h, w, c = shape
    return decode_image(path, "grayscale" if c == 1 else "rgb", (h, w))


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}")
    return value


def cmd_predict(args) -> int:
    import numpy as np
    from .data.layout import display_path  # names that are not UTF-8 print \xNN-escaped
    from .export import is_exported, load_exported
    if is_exported(args.model):  # an ONNX / TorchScript file from `cnnkit export`
        model, path = load_exported(args.model), Path(args.model)
    else:
        model, path = _load_model(args.model, args.weights, args.device)
    shape = tuple(model.input_shape)
    if len(shape) != 3:
        raise CliError(f"{path}: takes input {shape}, not images")
    files, problems = _expand_images(args.images)
    arrays, kept = [], []
    for f in files:
        try:
            arrays.append(np.asarray(_decode(f, shape)))
            kept.append(f)
        except Exception as err:  # noqa: BLE001 - any unreadable file is reported and skipped
            problems.append((display_path(str(f)), f"not an image ({type(err).__name__}: {err})"))
    for item, why in problems:
        print(f"cnnkit predict: skipped {display_path(item)}: {why}", file=sys.stderr)
    names = model.class_names or [str(i) for i in range(10_000)]
    results = []
    if arrays:
        proba = getattr(model, "predict_proba", model.predict)  # exported models: probabilities
        probs = proba(np.stack(arrays), batch_size=args.batch_size)
        k = min(args.top_k, probs.shape[1])
        multi = getattr(model, "multi_label", False)
        if multi:
            from .metrics_multilabel import labels_above
            thresholds = args.threshold if args.threshold is not None else model.thresholds
        for f, p in zip(kept, probs):
            if multi:  # every label at or above its threshold (tuned on validation)
                results.append({"file": display_path(str(f)), "labels": [
                    {**q, "index": names.index(q["class"])}
                    for q in labels_above(p, names[:len(p)], thresholds)]})
                continue
            top = np.argsort(-p, kind="stable")[:k]
            results.append({"file": display_path(str(f)), "predictions": [
                {"class": names[i], "index": int(i), "probability": float(p[i])} for i in top]})
    if args.json:
        print(json.dumps({"model": str(path), "results": results,
                          "skipped": [{"file": i, "reason": w} for i, w in problems]}, indent=2))
    elif results and "labels" in results[0]:
        width = max([len(r["file"]) for r in results] + [4])
        print(f"{'file':<{width}}  labels at or above their thresholds")
        for r in results:
            shown = ", ".join(f"{q['class']} {q['probability']:.3f}" for q in r["labels"])
            print(f"{r['file']:<{width}}  {shown or '(none)'}")
    else:
        width = max([len(r["file"]) for r in results] + [4])
        if results:
            print(f"{'file':<{width}}  top {min(args.top_k, len(results[0]['predictions']))}")
        for r in results:
            tops = ", ".join(f"{q['class']} {q['probability']:.3f}" for q in r["predictions"])
            print(f"{r['file']:<{width}}  {tops}")
    if not results:
        print("cnnkit predict: no image could be read", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------- summary / models

def cmd_summary(args) -> int:
    path = Path(args.model).expanduser()
    if path.exists():
        model, _ = _load_model(args.model, args.weights)
    else:
        from .models import registry
        try:
            registry.get_entry(args.model)
        except KeyError as err:
            raise CliError(f"{args.model}: no such model folder or run, and {err} Zoo names: "
                           f"{', '.join(registry.list_models())}") from None
        model = registry.create(args.model, num_classes=args.num_classes,
                                input_shape=args.input_shape)
    model.summary()
    return 0


def cmd_models(args) -> int:
    from .models import registry
    pattern = args.pattern if any(c in args.pattern for c in "*?[") else f"*{args.pattern}*"
    names = registry.list_models(pattern, pretrained=args.pretrained)
    infos = [registry.model_info(n) for n in names]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    if not infos:
        print(f"no model matches {args.pattern!r}; `cnnkit models` lists all", file=sys.stderr)
        return 1
    width = max(len(i["name"]) for i in infos)
    fam = max(len(i["family"]) for i in infos)
    print(f"{'name':<{width}}  {'family':<{fam}}  input      weights  description")
    for i in infos:
        shape = "x".join(str(s) for s in i["input_shape"])
        print(f"{i['name']:<{width}}  {i['family']:<{fam}}  {shape:<9}  "
              f"{'yes' if i['pretrained'] else '-':<7}  {i['description']}")
    print(f"{len(infos)} models; `cnnkit summary NAME` shows one, "
          "`cnnkit train --model NAME` trains it")
    if "timm/" not in pattern:
        print(_timm_models_line())
    return 0


def _timm_models_line() -> str:
    """Where timm's models are: listed on request (there are ~1,400), or how to get them."""
    try:
        from .models.zoo.timm_models import TimmUnavailableError, timm_names
        return (f"and {len(timm_names())} timm models as timm/NAME: "
                "`cnnkit models 'timm/*'` lists them, `cnnkit models 'timm/resnet*'` some")
    except TimmUnavailableError:
        return "more as timm/NAME with timm installed: pip install 'cnnkit[timm]'"


# ------------------------------------------------------------------------------- check / report

def cmd_check(args) -> int:
    from .data.check import main_check
    argv = [args.path]
    if args.bad_files:
        argv += ["--bad-files", args.bad_files]
    if args.json:
        argv += ["--json", args.json]
    if args.no_duplicates:
        argv.append("--no-duplicates")
    if not Path(args.path).exists():
        raise CliError(f"{args.path}: no such folder")
    return main_check(argv)


def cmd_report(args) -> int:
    from .report import write_report
    from .runs import RunDir
    run = RunDir(args.run)
    if not run.is_run():
        raise CliError(f"{args.run}: not a run directory (no config.json)")
    print(f"report: {write_report(run)}")
    return 0


# ------------------------------------------------------------------------------- explain / export / serve

def cmd_explain(args) -> int:
    from .explain import explain_files
    model, _ = _load_model(args.model, args.weights)
    classes = len(model.class_names or []) or None
    if args.class_index is not None and classes and args.class_index >= classes:
        raise CliError(f"--class-index {args.class_index}: the model has {classes} classes "
                       f"(0..{classes - 1}: {', '.join(model.class_names[:5])}"
                       f"{', ...' if classes > 5 else ''})")
    files, problems = _expand_images(args.images)
    for item, why in problems:
        print(f"cnnkit explain: skipped {item}: {why}", file=sys.stderr)
    if not files:
        raise CliError("no image files to explain")
    written = explain_files(model, files, args.out, class_index=args.class_index, layer=args.layer)
    for w in written:
        print(w)
    return 0


def cmd_export(args) -> int:
    from .export import export  # ships always; ONNX's own packages are the export extra
    model, path = _load_model(args.model, args.weights)
    output = args.output or _default_export_path(args.model, path, args.format)
    by_suffix = A.EXPORT_SUFFIXES[Path(output).suffix.lower()]
    if args.format and args.format != by_suffix:
        raise CliError(f"--format {args.format} does not match {output}, whose suffix means "
                       f"{by_suffix}: name it .onnx for ONNX, .pt for TorchScript")
    if args.int8 and (args.format or by_suffix) != "onnx":
        raise CliError("--int8 quantizes an ONNX export: drop --format torchscript / the .pt name")
    if args.data and not args.int8:
        raise CliError("--data chooses the images that calibrate --int8: add --int8")
    images = _int8_images(args, model) if args.int8 else None
    try:
        export(model, output, format=args.format, check=not args.no_check)  # it reports itself
    except ImportError as err:
        raise CliError(_needs_extra("export", err)) from err
    if images is not None:
        from .export import ParityError
        from .export_int8 import quantize_int8
        calib, held_out, where = images
        try:
            quantize_int8(output, calib, held_out=held_out, held_out_from=where)
        except (ValueError, ParityError) as err:
            raise CliError(str(err)) from err
    _refresh_report(args.model)
    return 0


def _refresh_report(target: str) -> None:
    """A run's report.html lists its exports: write it again when it exists."""
    root = Path(target).expanduser()
    if (root / "report.html").is_file():
        from .report import write_report
        print(f"report: {write_report(root)}")


def _int8_images(args, model):
    """``--int8``: the training images that calibrate and the held-out ones that measure:
    the run's own (cnnkit.export_int8.run_images), or with ``--data`` that data's, 10% per
    class held out (or its test split); read before anything is written."""
    from .config import TrainConfig
    from .export_int8 import data_images, run_images
    try:
        if not args.data:
            return run_images(args.model, args.calibration)
        h, w, c = model.input_shape
        return data_images(TrainConfig(data=args.data, image_size=[h, w], grayscale=c == 1,
                                       val_split=0.1), args.calibration)
    except ValueError as err:
        raise CliError(str(err)) from err


def _needs_extra(extra: str, err: ImportError) -> str:
    """One line for a missing optional package: which, and the install that brings it."""
    missing = getattr(err, "name", None) or str(err)
    return (f"cnnkit {extra} needs {missing}, which is not installed: "
            f"pip install 'cnnkit[{extra}]'")


FORMAT_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}  # --format -> the default file's suffix


def _default_export_path(target: str, model_path: Path, fmt: str | None) -> Path:
    """RUN/model.onnx for a run directory (beside its best/ and last/), FOLDER/model.onnx for
    a model folder; ``--format torchscript`` makes it model.pt."""
    root = Path(target).expanduser()
    folder = root if root.is_dir() else model_path
    return folder / f"model{FORMAT_SUFFIX[fmt or 'onnx']}"


def cmd_serve(args) -> int:
    from .serve.server import run  # ships always; the web server's packages are the serve extra
    exported = Path(args.model).suffix.lower() in (".onnx", ".pt", ".ts", ".torchscript")
    path = Path(args.model) if exported and Path(args.model).is_file() else \
        _resolve_model_path(args.model, args.weights)
    from .models.saving import ModelFileError
    try:
        budget = {} if args.max_request_pixels is None else {"max_request_pixels": args.max_request_pixels}
        run(str(path), host=args.host, port=args.port, **budget)
    except ImportError as err:
        raise CliError(_needs_extra("serve", err)) from err
    except ModelFileError as err:
        raise CliError(str(err)) from err
    return 0


# ------------------------------------------------------------------------------- parser

def build_parser() -> Parser:
    parser = Parser(prog="cnnkit", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parser.subcommands = sub.choices
    build_train_parser(sub)

    p = _sub(sub, "evaluate", "evaluate a run's model (or a model folder) on labelled images",
             "Loss, accuracy, per-class precision/recall/F1 of a trained model. A run directory "
             "is evaluated on its own test (or held-out validation) images unless --data is given; "
             "a folder given with --data is evaluated whole (or its test/ split).", """
  cnnkit evaluate runs/bundled-mnist-2conv
  cnnkit evaluate runs/cifar10-jpeg-simple-cnn --weights last --json
  cnnkit evaluate my-model/ --data ./photos/test --output metrics.json
""")
    p.add_argument("target", metavar="RUN_OR_MODEL", help="a run directory or a model folder")
    p.add_argument("--data", metavar="NAME|PATH", help="dataset name or folder of class folders")
    p.add_argument("--data-dir", metavar="DIR", help="folder with a named dataset's canonical files")
    p.add_argument("--weights", choices=["best", "last"], default=None,
                   help="which model of a run directory [default: the one its metrics.json "
                   "reports, which is what `cnnkit train` printed]")
    p.add_argument("--batch-size", type=A.positive_int, default=256, help="images per batch [default: 256]")
    p.add_argument("--device", type=A.device, default=None, help="cpu, cuda, ... [default: auto]")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--output", type=A.output_file, metavar="FILE",
                   help="also write the metrics as JSON to FILE")
    p.add_argument("--tta", nargs="?", const="flip", default=None,
                   choices=["none", "flip", "flip_translate"],
                   help="test-time augmentation: average the probabilities of the image and its "
                   "mirror (flip, what --tta alone means) or also of 1-pixel shifts "
                   "(flip_translate) [default: a run's own --tta, else none]")
    p.set_defaults(func=cmd_evaluate)

    p = _sub(sub, "predict", "top-k classes for image files, folders or globs",
             "Predict the classes of images with a trained model. Files that are not images are "
             "reported on stderr and skipped; the others are still predicted.", """
  cnnkit predict runs/bundled-mnist-2conv digit.png
  cnnkit predict runs/cifar10-jpeg-simple-cnn photos/ 'more/**/*.jpg' --top-k 3
  cnnkit predict my-model/ cat.jpg --json
""")
    p.add_argument("model", metavar="MODEL", help="a run directory or a model folder")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    p.add_argument("--top-k", type=A.positive_int, default=3, help="classes to show per image [default: 3]")
    p.add_argument("--threshold", type=_probability, default=None,
                   help="multi-label: show labels at or above this probability instead of the "
                        "per-label thresholds tuned on validation")
    p.add_argument("--weights", choices=["best", "last"], default="best",
                   help="which model of a run directory [default: best]")
    p.add_argument("--batch-size", type=A.positive_int, default=64, help="images per batch [default: 64]")
    p.add_argument("--device", type=A.device, default=None, help="cpu, cuda, ... [default: auto]")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_predict)

    p = _sub(sub, "summary", "print a model's layers and parameter counts",
             "Keras-style summary of a saved model, a run's model or a zoo model.", """
  cnnkit summary runs/bundled-mnist-2conv
  cnnkit summary simple-cnn
  cnnkit summary resnet18 --input-shape 64,64,3 --num-classes 5
""")
    p.add_argument("model", metavar="MODEL", help="a model folder, a run directory or a zoo name")
    p.add_argument("--input-shape", type=A.image_shape, metavar="H,W,C", help="input shape for a zoo model")
    p.add_argument("--num-classes", type=A.positive_int, default=None, help="classes for a zoo model")
    p.add_argument("--weights", choices=["best", "last"], default="best",
                   help="which model of a run directory [default: best]")
    p.set_defaults(func=cmd_summary)

    p = _sub(sub, "models", "list the model zoo",
             "The models `cnnkit train --model NAME` can build.", """
  cnnkit models
  cnnkit models 'resnet*'
  cnnkit models --pretrained --json
""")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern [default: *]")
    p.add_argument("--pretrained", action="store_true", help="only models with published weights")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)

    p = _sub(sub, "check", "check an image folder for problems before training",
             "Counts per class and split, class imbalance, unreadable or truncated files, "
             "extensions that lie, odd image modes, duplicates and train/test leakage. "
             "Exit status 0: fine, 1: problems found, 2: not a dataset folder.", """
  cnnkit check ../shared/datasets/cifar10-jpeg/train
  cnnkit check photos/ --bad-files bad.tsv --json check.json
""")
    p.add_argument("path", help="root/<class>/<images> or root/<split>/<class>/<images>")
    p.add_argument("--bad-files", type=A.output_file, metavar="FILE",
                   help="write the files with findings (TSV)")
    p.add_argument("--json", type=A.output_file, metavar="FILE", help="write the full report as JSON")
    p.add_argument("--no-duplicates", action="store_true", help="skip the duplicate search")
    p.set_defaults(func=cmd_check)

    p = _sub(sub, "report", "rebuild a run's report.html from its files",
             "Write report.html again from a run directory (after editing or copying it).", """
  cnnkit report runs/bundled-mnist-2conv
""")
    p.add_argument("run", metavar="RUN_DIR")
    p.set_defaults(func=cmd_report)

    p = _sub(sub, "explain", "Grad-CAM heatmaps and feature maps for images",
             "For each image a Grad-CAM picture and a feature-map grid, plus the first layer's "
             "filters, written into --out.", """
  cnnkit explain runs/cifar10-jpeg-simple-cnn cat.jpg dog.jpg --out explained/
""")
    p.add_argument("model", metavar="MODEL", help="a run directory or a model folder")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs")
    p.add_argument("--out", type=A.output_dir, default="explained", help="output folder [default: explained]")
    p.add_argument("--class-index", type=A.non_negative_int, default=None,
                   help="explain this class (default: the predicted one)")
    p.add_argument("--layer", default=None, help="module name to explain (default: the last conv)")
    p.add_argument("--weights", choices=["best", "last"], default="best")
    p.set_defaults(func=cmd_explain)

    p = _sub(sub, "export", "export a model to ONNX or TorchScript, preprocessing inside",
             "The exported graph takes uint8 N×H×W×C pixels and returns class probabilities; a "
             "parity check against PyTorch runs unless --no-check.", """
  cnnkit export runs/cifar10-jpeg-simple-cnn                 # runs/cifar10-jpeg-simple-cnn/model.onnx
  cnnkit export runs/cifar10-jpeg-simple-cnn --format torchscript   # .../model.pt
  cnnkit export my-model/ exported/model.onnx
  cnnkit export runs/cifar10-jpeg-simple-cnn --int8          # + model.int8.onnx, its accuracy and speed
""")
    p.add_argument("model", metavar="MODEL", help="a run directory or a model folder")
    p.add_argument("output", type=A.export_path, metavar="FILE", nargs="?", default=None,
                   help="model.onnx or model.pt [default: MODEL/model.onnx, or model.pt with "
                   "--format torchscript]")
    p.add_argument("--format", choices=list(FORMAT_SUFFIX), default=None,
                   help="default: from the file suffix (onnx without a file name)")
    p.add_argument("--no-check", action="store_true", help="skip the parity check")
    p.add_argument("--weights", choices=["best", "last"], default="best")
    p.add_argument("--int8", action="store_true", help="also write MODEL.int8.onnx (ONNX Runtime "
                   "static quantization, calibrated on the run's training images) with its "
                   "held-out accuracy and speed against float32 in MODEL.int8.onnx.json")
    p.add_argument("--calibration", type=A.positive_int, default=300, metavar="N",
                   help="training images (seeded) that calibrate --int8 [default: 300]")
    p.add_argument("--data", metavar="NAME|PATH", default=None,
                   help="with --int8: calibrate and measure on this dataset or folder of class "
                   "folders (10%% per class held out, or its test split) instead of the run's; "
                   "needed for a model folder")
    p.set_defaults(func=cmd_export)

    p = _sub(sub, "serve", "serve a model over HTTP",
             "An HTTP prediction service with an upload page.", """
  cnnkit serve runs/cifar10-jpeg-simple-cnn --port 8000
""")
    p.add_argument("model", metavar="MODEL", help="a run directory, a model folder or an exported "
                   ".onnx/.pt file")
    p.add_argument("--host", default="127.0.0.1", help="[default: 127.0.0.1]")
    p.add_argument("--port", type=A.port, default=8000, help="[default: 8000]")
    p.add_argument("--weights", choices=["best", "last"], default="best")
    p.add_argument("--max-request-pixels", type=int, default=None, metavar="N",
                   help="pixels of all images of one request, read from their headers "
                   "[default: 100000000]; more is answered 413")
    p.set_defaults(func=cmd_serve)
    from .cli_runs import add_commands as add_runs_commands
    add_runs_commands(sub, _sub)  # cnnkit runs | compare
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"cnnkit: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra:  # report it from the subcommand's parser: it knows the valid options
        parser.subcommands.get(args.command, parser).error(
            f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    args._argv = argv
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            code = args.func(args)
    except (CliError, *A.USER_ERRORS) as err:  # the user's input, files or machine: one line
        print(f"cnnkit {args.command}: {A.one_line(err)}", file=sys.stderr)
        code = 2
    except Exception as err:  # noqa: BLE001 - a cnnkit bug: still one line, unless debugging
        if os.environ.get("CNNKIT_DEBUG"):
            raise
        print(f"cnnkit {args.command}: unexpected {type(err).__name__}: {A.one_line(err)} "
              "(CNNKIT_DEBUG=1 shows the traceback)", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print(f"\ncnnkit {args.command}: aborted", file=sys.stderr)
        code = 130
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:  # a torchrun rank: see ddp.exit_rank
        from .train import ddp
        ddp.exit_rank(code)
    return code


def entry() -> None:
    """The ``cnnkit`` console script and ``python -m cnnkit``: ``main()``, then a prompt exit
    (``process_exit.exit_now``: ~1 s less after a training run)."""
    code = main()
    from .process_exit import exit_now
    exit_now(code)


if __name__ == "__main__":
    entry()
