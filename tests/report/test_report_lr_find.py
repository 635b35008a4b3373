"""report.html's learning-rate finder section, from a run's lr_find.json and lr_find.png."""

from __future__ import annotations

import json

from cnnkit.report import render_report
from cnnkit.train.lr_finder import LRFindResult


def _sweep() -> LRFindResult:
    lrs = [1e-7 * 10 ** (i / 4) for i in range(30)]
    losses = [2.3 - 0.05 * i for i in range(20)] + [1.35 + 0.4 * i for i in range(10)]
    return LRFindResult(lrs, losses, losses, {"valley": lrs[8], "steepest": lrs[12],
                                              "minimum": lrs[19] / 10},
                        {"valley": (lrs[8], losses[8]), "steepest": (lrs[12], losses[12]),
                         "minimum": (lrs[19], losses[19])},
                        stopped="the smoothed loss passed 4x its minimum at lr 3.16e+00",
                        settings={"start_lr": 1e-7, "end_lr": 10.0, "steps_run": 30})


def _run(tmp_path, chosen):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    sweep = _sweep()
    record = sweep.to_dict()
    record["chosen"] = chosen
    (run / "lr_find.json").write_text(json.dumps(record))
    sweep.plot(run / "lr_find.png")
    sweep.plot(run / "lr_find.narrow.png", narrow=True)
    return run


def test_the_section_shows_the_plot_the_suggestions_and_the_one_trained_with(tmp_path):
    run = _run(tmp_path, {"suggestion": "steepest", "lr": _sweep().suggestions["steepest"]})
    html = render_report(run)
    section = html[html.index("id='lr-find'"):]
    assert 'data-plot="lr_find" src="data:image/png;base64,' in section
    assert '<source media="(max-width: 700px)" srcset="data:image/png;base64,' in section
    assert "stopped early: the smoothed loss passed 4x its minimum" in section
    for name in ("valley", "steepest", "minimum"):
        assert f"<td>{name}</td>" in section
    assert section.count("trained with this rate") == 1
    steep_row = section[section.index("<td>steepest</td>"):].split("</tr>")[0]
    assert "trained with this rate" in steep_row and "used the steepest suggestion" in section


def test_an_lr_find_only_run_says_it_did_not_train(tmp_path):
    html = render_report(_run(tmp_path, None))
    assert "the model was not trained (--lr-find-only)" in html
    assert "trained with this rate" not in html


def test_a_flat_sweep_warns_in_the_report(tmp_path):
    run = _run(tmp_path, None)
    record = json.loads((run / "lr_find.json").read_text())
    record["warning"] = "the smoothed loss fell by less than 2% during the 30-step sweep"
    (run / "lr_find.json").write_text(json.dumps(record))
    assert "<p class='note'>the smoothed loss fell by less than 2%" in render_report(run)


def test_a_run_without_a_sweep_has_no_section(tmp_path):
    run = tmp_path / "plain"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert "lr-find" not in render_report(run)
