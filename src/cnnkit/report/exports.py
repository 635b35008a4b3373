"""The report's "Exports" section: the files ``cnnkit export`` wrote into the run directory.

Each export leaves its spec beside it (``model.onnx.json``, ``model.int8.onnx.json``, ...);
this lists them with their parity figure and, for int8 files, the held-out accuracy of
float32 and int8, the delta and the speed of both (cnnkit.export_int8)."""

from __future__ import annotations

import json
from pathlib import Path


def export_rows(run_dir) -> list[list[str]]:
    """One row per export spec in ``run_dir``: file, runtime, check, accuracy, speed."""
    rows = []
    for spec_path in sorted(Path(run_dir).glob("*.json")):
        try:
            spec = json.loads(spec_path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(spec, dict) or spec.get("format") != "cnnkit-export":
            continue
        q, parity = spec.get("int8"), spec.get("parity")
        if q:
            check = (f"top-1 agreement {q['agreement']:.2%} on {q['calibration_images']} "
                     "calibration images")
            acc = (f"float32 {q['float_accuracy']:.4f}, int8 {q['int8_accuracy']:.4f} "
                   f"(delta {q['accuracy_delta']:+.4f}) on {q['held_out_images']} held-out images"
                   if q.get("float_accuracy") is not None else "")
            speed = (f"float32 {q['float_images_per_s']:.0f} / int8 {q['int8_images_per_s']:.0f} "
                     f"images/s ({q['speedup']:.2f}x; batch {q['batch_size']}, {q['threads']} "
                     f"thread(s), {q['cpu']}; rough on a shared machine)")
        else:
            check = (f"max |diff| {parity['max_abs_diff']:.2g} on {parity['samples']} images"
                     if parity else "not checked")
            acc = speed = ""
        runtime = f"{spec.get('runtime', '')}{' int8' if q else ''}"
        rows.append([spec.get("file", spec_path.stem), runtime, check, acc, speed])
    return rows
