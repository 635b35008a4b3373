"""The end of a run: evaluate the reported weights once, write metrics.json, the plots and
report.html, and print the final lines, all from the same evaluation."""

from __future__ import annotations

from ..config import TrainConfig
from .data import Data
from .evaluate import evaluate
from .timer import Clock
from ..train.tta import VIEWS

__all__ = ["finish", "EVAL_BATCH_SIZE"]

EVAL_BATCH_SIZE = 256  # also `cnnkit evaluate`'s default: the same batches, the same numbers


def tta_record(tta: str) -> dict:
    """metrics.json's account of test-time augmentation: ``tta`` and, when on, its views."""
    return {"tta": tta != "none", **({"tta_views": VIEWS[tta]} if tta != "none" else {})}


def finish(run, model, data: Data, cfg: TrainConfig, *, history, best, weights: str,
           notes=(), log=print, planned: int | None = None) -> dict:
    """Evaluate ``model`` (holding the ``weights`` 'best' or 'last'), write metrics.json,
    the plots and report.html; returns the metrics."""
    planned = planned or cfg.epochs
    split = data.eval_split
    if split is None:
        log("no validation or test images: skipping evaluation")
        return {}
    clock = Clock(model).start()
    ev = evaluate(model, *split, batch_size=EVAL_BATCH_SIZE, per_sample=True,
                  class_names=data.class_names, tta=cfg.tta)
    evaluate_s = clock.stop()
    report = ev["report"]
    epochs_run = len(history)
    train_s = sum(r.get("epoch_s", 0.0) or 0.0 for r in history)
    wait_s = sum(r.get("data_wait_s", 0.0) or 0.0 for r in history)
    compute_s = sum(r.get("compute_s", 0.0) or 0.0 for r in history)
    best = {k: v for k, v in (best or {}).items() if k not in ("written", "in_checkpoint")}
    weights_epoch = best.get("epoch") if weights == "best" and best else epochs_run
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
        "macro_precision": report["macro_precision"],
        "macro_recall": report["macro_recall"],
        "macro_f1": report["macro_f1"],
        "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"],
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
    log(f"{label} ({weights} weights, epoch {weights_epoch}): {ev['accuracy']:.4f} "
        f"(loss {ev['loss']:.4f}) on {where}; evaluation and report took "
        f"{evaluate_s + report_s:.1f}s")
    if cfg.report and run.report.exists():
        log(f"report: {run.report}")
    return metrics
