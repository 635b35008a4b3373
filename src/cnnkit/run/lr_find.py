"""``cnnkit train --lr-find`` / ``--lr-find-only``: the learning-rate sweep of a run.

The sweep (``cnnkit.train.lr_finder``) runs on the compiled model before the plan is made,
on the run's training images with the run's batch size, and puts the weights, optimizer and
torch's random state back; its batches come from a generator of its own (seeded by
``--seed``), so the run's loader, augmentation and initial weights are those of the same run
without a sweep. The run then trains with the chosen suggestion (``--lr-find-suggestion``,
fastai's ``valley`` by default), or, with ``--lr-find-only``, does not train. A resumed run
repeats the sweep (the same seed gives the same rates) and continues with its checkpoint's
optimizer state.
"""

from __future__ import annotations

import warnings

from ..config import TrainConfig

__all__ = ["LR_FIND_JSON", "LR_FIND_PNG", "sweep_for_run"]

LR_FIND_JSON, LR_FIND_PNG = "lr_find.json", "lr_find.png"  # and lr_find.narrow.png (phones)


def sweep_for_run(model, cfg: TrainConfig, data, log=print) -> tuple[dict, list[str]]:
    """Sweep ``model``'s rate on ``data.train``; set the chosen rate unless ``--lr-find-only``.
    Returns (the run files: lr_find.json text and lr_find.png bytes, the notes)."""
    from ..train.lr_finder import lr_find
    images, labels = data.train
    with warnings.catch_warnings():  # said once below, in the run's own words
        warnings.simplefilter("ignore", UserWarning)
        result = lr_find(model, images, labels, batch_size=cfg.batch_size, seed=cfg.seed,
                         num_it=cfg.lr_find_steps)
    pick = cfg.lr_find_suggestion
    chosen = result.suggestion(pick)
    record = result.to_dict()
    record["chosen"] = None if cfg.lr_find_only else {"suggestion": pick, "lr": chosen}
    import json
    files = {LR_FIND_JSON: json.dumps(record, indent=1), LR_FIND_PNG: result.plot(),
             "lr_find.narrow.png": result.plot(narrow=True)}
    found = ", ".join(f"{k} {v:.2e}" for k, v in result.suggestions.items())
    if cfg.lr_find_only:
        notes = [f"--lr-find-only: the learning rate was swept ({found}; see lr_find.png) and "
                 "the model was not trained: the metrics are of its initial weights"]
    else:
        model.learning_rate = chosen
        if getattr(model, "compile_config", None):
            model.compile_config["learning_rate"] = float(chosen)  # saved with the model
        notes = [f"--lr-find: trained with the {pick} suggestion, lr {chosen:.2e} ({found}; "
                 "see lr_find.png)"]
    if result.warning:
        notes.append(f"lr finder warning: {result.warning}")
        log(f"warning: lr finder: {result.warning}")
    log(f"lr finder: {found}"
        + ("" if cfg.lr_find_only else f"; training with {pick} {chosen:.2e}"))
    return files, notes
