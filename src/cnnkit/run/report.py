"""The end of a run: evaluate the reported weights once (or reuse the last validation when it
evaluated those very weights), write metrics.json, the plots and report.html, and print the
final lines, all from the same evaluation."""

from __future__ import annotations

from ..config import TrainConfig
from .data import Data
from .evaluate import FINAL_DEFAULTS, evaluate
from .timer import Clock
from ..train.tta import VIEWS

__all__ = ["finish", "EVAL_BATCH_SIZE"]

EVAL_BATCH_SIZE = FINAL_DEFAULTS["batch_size"]  # 256, also `cnnkit evaluate`'s default:
# the same batches, the same numbers


def tta_record(tta: str) -> dict:
    """metrics.json's account of test-time augmentation: ``tta`` and, when on, its views."""
    return {"tta": tta != "none", **({"tta_views": VIEWS[tta]} if tta != "none" else {})}


def finish(run, model, data: Data, cfg: TrainConfig, *, history, best, weights: str,
           notes=(), log=print, planned: int | None = None, validated=None) -> dict:
    """Evaluate ``model`` (holding the ``weights`` 'best' or 'last'), write metrics.json,
    the plots and report.html; returns the metrics.

    ``validated``: a callback with ``outputs_for`` (``run.evaluate.Validate`` keeping its
    per-sample outputs, a recipe's ``Monitor``); when it last evaluated these very weights on
    this split, the same way, its outputs are the
    evaluation (computed once, not twice)."""
    planned = planned or cfg.epochs
    split = data.eval_split
    if split is None:
        log("no validation or test images: skipping evaluation")
        return {}
    epochs_run = len(history)
    best = {k: v for k, v in (best or {}).items() if k not in ("written", "in_checkpoint")}
    weights_epoch = best.get("epoch") if weights == "best" and best else epochs_run
    clock = Clock(model).start()
    ev = validated.outputs_for(*split, weights_epoch, batch_size=EVAL_BATCH_SIZE, tta=cfg.tta) \
        if validated is not None else None
    if ev is None:
        ev = evaluate(model, *split, batch_size=EVAL_BATCH_SIZE, per_sample=True, tta=cfg.tta)
    if data.multi_label:  # thresholds tuned on validation, stored beside the weights
        from ..metrics_multilabel import multilabel_report
        from .multilabel import label_metrics, store_thresholds
        quality = label_metrics(model, data, ev)
        for folder in [run.best] if weights == "best" else [run.last, run.best]:  # same weights
            store_thresholds(folder, quality["thresholds"])
        report = multilabel_report(ev["probabilities"], ev["labels"], list(data.class_names),
                                   quality["thresholds"])
    else:
        from ..metrics import classification_report
        report = classification_report(ev["labels"], ev["predicted"], list(data.class_names),
                                       num_classes=len(data.class_names))
        quality = {k: report[k] for k in ("macro_precision", "macro_recall", "macro_f1",
                                          "per_class", "confusion_matrix")}
    ev = {**ev, "report": report}
    evaluate_s = clock.stop()
    train_s = sum(r.get("epoch_s", 0.0) or 0.0 for r in history)
    wait_s = sum(r.get("data_wait_s", 0.0) or 0.0 for r in history)
    compute_s = sum(r.get("compute_s", 0.0) or 0.0 for r in history)
    n = len(split[0])
    metrics = {
        "evaluated_on": (f"test split ({n} images)" if data.test_name == "test" else
                         f"validation split ({n} images, held out from training)"),
        "split": data.test_name,
        "weights": weights,
        "weights_epoch": weights_epoch,
        "test_loss": ev["loss"],
        **tta_record(cfg.tta),
        "test_accuracy": ev["accuracy"],
        **quality,
        "class_names": list(data.class_names),
        "epochs_run": epochs_run,
        "epochs_planned": planned,
        "best": best,
        "train_seconds": round(train_s, 3),
        "seconds_per_epoch": round(train_s / epochs_run, 3) if epochs_run else None,
        "data_wait_s": round(wait_s, 3),
        "compute_s": round(compute_s, 3),
        "evaluate_seconds": round(evaluate_s, 3),
        "data": data.describe(),
        "notes": [n for n in list(data.notes) + list(notes) if not n.startswith("warning: ")],
        # a plan's note that starts 'warning: ' (run/sampler.py's imbalance lines) is a warning
        "warnings": [n[len("warning: "):] for n in notes if n.startswith("warning: ")],
    }
    run.write_json(run.metrics, metrics)
    clock = Clock().start()
    if cfg.report:
        from ..report import write_plots, write_report
        try:
            write_plots(run, model, split, ev, data.class_names, history, seed=cfg.seed)
            write_report(run)
        except Exception as err:  # noqa: BLE001 - a failed picture must not lose the run
            log(f"warning: the report could not be completed ({type(err).__name__}: {err})")
    report_s = clock.stop()
    metrics["report_seconds"] = round(report_s, 3)
    run.write_json(run.metrics, metrics)
    stopped = f" (stopped early: {epochs_run} of {planned})" if epochs_run < planned else ""
    best_txt = (f"; best {best['monitor']} {best['value']:.4f} at epoch {best['epoch']}"
                if best else "")
    log(f"done: {epochs_run} epochs{stopped} in {train_s:.1f}s "
        f"({train_s / max(epochs_run, 1):.1f}s/epoch, data wait {100 * wait_s / max(train_s, 1e-9):.0f}%)"
        f"{best_txt}")
    label, where = (("test accuracy", f"{n} test images") if data.test_name == "test" else
                    ("held-out accuracy", f"{n} validation images held out from training"))
    if data.multi_label:
        label = label.replace("accuracy", "mAP")
        quality_txt = (f"{metrics['map']:.4f} (macro F1 {metrics['macro_f1']:.4f} at the tuned "
                       f"thresholds, exact match {metrics['exact_match']:.4f}, loss "
                       f"{ev['loss']:.4f})")
    else:
        quality_txt = f"{ev['accuracy']:.4f} (loss {ev['loss']:.4f})"
    log(f"{label} ({weights} weights, epoch {weights_epoch}): {quality_txt} "
        f"on {where}; evaluation and report took {evaluate_s + report_s:.1f}s")
    if cfg.report and run.report.exists():
        log(f"report: {run.report}")
    return metrics
