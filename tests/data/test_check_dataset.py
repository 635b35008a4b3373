"""check_dataset / `cnnkit check`: the report's contents, summary, bad-file list, exit codes."""

from __future__ import annotations

import json
import shutil

import pytest

from cnnkit.data.check import check_dataset, inspect_file, main_check


@pytest.fixture
def messy(tmp_path, write_image, bad_files):
    """train/ and val/ splits with one of every problem."""
    root = tmp_path / "messy"
    for split, n in (("train", 4), ("val", 2)):
        for k, cls in enumerate(("cat", "dog")):
            for i in range(n):
                write_image(root / split / cls / f"{i}.png", seed=1000 * k + 10 * i + n)
    write_image(root / "train" / "dog" / "extra.png", seed=555)  # dog: 5 vs cat: 4
    bad_files("empty", root / "train" / "cat" / "empty.jpg")
    bad_files("text", root / "train" / "cat" / "notes.txt")
    bad_files("truncated", root / "train" / "dog" / "cut.jpg")
    bad_files("corrupt", root / "train" / "dog" / "smashed.png")
    bad_files("corrupt_data", root / "val" / "dog" / "garbled.png")
    write_image(root / "train" / "cat" / "png_inside.jpg", fmt="PNG", seed=7)
    write_image(root / "train" / "dog" / "palette.gif", mode="P", seed=8)
    write_image(root / "train" / "dog" / "gray.png", mode="L", seed=9)
    shutil.copy(root / "train" / "cat" / "0.png", root / "val" / "cat" / "leak.png")
    shutil.copy(root / "train" / "cat" / "1.png", root / "train" / "dog" / "mislabelled.png")
    return root


def test_counts_imbalance_and_layout(messy):
    r = check_dataset(messy)
    assert r.splits == ["train", "val"] and r.class_names == ["cat", "dog"]
    # readable images only: train cat 4 + png_inside; dog 4 + extra + palette + gray + copy
    assert r.counts["train"] == {"cat": 5, "dog": 8}
    assert r.counts["val"] == {"cat": 3, "dog": 2}
    assert r.imbalance()["train"] == pytest.approx(8 / 5)
    assert r.imbalance_ratio == pytest.approx(1.6)
    assert r.files_total == 23 and r.readable == 18
    assert r.missing_splits == ["test"]


def test_every_bad_file_kind_is_found(messy):
    r = check_dataset(messy)
    kinds = {p.path.split("/messy/")[1]: p.kind for p in r.problems
             if p.kind in ("empty", "not_image", "truncated", "corrupt")}
    assert kinds == {"train/cat/empty.jpg": "empty", "train/cat/notes.txt": "not_image",
                     "train/dog/cut.jpg": "truncated", "train/dog/smashed.png": "corrupt",
                     "val/dog/garbled.png": "corrupt"}
    assert [p.path.endswith("png_inside.jpg") for p in r.extension_mismatches] == [True]
    assert "holds PNG" in r.extension_mismatches[0].detail
    assert {p.path.rsplit("/", 1)[1] for p in r.odd_modes} == {"palette.gif"}
    assert r.modes["L"] == 1 and r.modes["P"] == 1
    assert any("mixed colour" in n for n in r.notes)
    assert not r.ok


def test_worker_processes_find_what_one_thread_finds(messy, monkeypatch):
    from cnnkit.data import decode_pool
    forks = []
    real = decode_pool._fork_context
    monkeypatch.setattr(decode_pool, "_fork_context", lambda: forks.append(1) or real())
    many, one = check_dataset(messy, workers=2), check_dataset(messy, workers=1)
    assert forks, "workers=2 should have used worker processes"
    assert many.to_dict() == one.to_dict() and many.readable == 18


def test_duplicates_leakage_and_label_conflicts(messy):
    r = check_dataset(messy)
    groups = [sorted(p.split("/messy/")[1] for p in g) for g in r.duplicates]
    assert sorted(groups) == [["train/cat/0.png", "val/cat/leak.png"],
                              ["train/cat/1.png", "train/dog/mislabelled.png"]]
    assert [sorted(p.split("/messy/")[1] for p in g) for g in r.cross_split_duplicates] == [
        ["train/cat/0.png", "val/cat/leak.png"]]
    assert len(r.label_conflicts) == 1
    assert check_dataset(messy, duplicates=False).duplicates == []


def test_summary_reads_well(messy):
    text = check_dataset(messy).summary()
    for needle in ("layout: splits train/, val/", "2 classes, 23 files, 18 readable images",
                   "imbalance", "empty file: 1", "not an image: 1", "truncated: 1", "corrupt: 2",
                   "content does not match extension: 1", "odd colour mode: 1", "LEAKAGE",
                   "label conflicts", "no test/ split", "verdict: PROBLEMS",
                   "train/cat/notes.txt"):
        assert needle in text, needle
    # the class table lists both splits
    assert any(line.split() == ["cat", "5", "3"] for line in text.splitlines())


def test_write_bad_files(messy, tmp_path):
    r = check_dataset(messy)
    out = r.write_bad_files(tmp_path / "bad.tsv")
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["path", "problem", "detail"]
    listed = {(row[0].rsplit("/", 1)[1], row[1]) for row in rows[1:]}
    assert {("empty.jpg", "empty"), ("notes.txt", "not_image"), ("cut.jpg", "truncated"),
            ("smashed.png", "corrupt"), ("png_inside.jpg", "extension_mismatch"),
            ("palette.gif", "odd_mode"), ("leak.png", "leakage")} <= listed


def test_clean_flat_folder_is_ok(image_folder):
    r = check_dataset(image_folder)
    assert r.ok and r.problems == [] and r.splits == ["all"]
    assert r.counts == {"all": {"cat": 4, "dog": 6}}
    assert r.imbalance_ratio == pytest.approx(1.5)
    assert "verdict: OK" in r.summary()
    assert r.sizes == {"8×8": 10}
    json.dumps(r.to_dict())


def test_single_class_empty_class_and_stray_files(tmp_path, write_image):
    write_image(tmp_path / "only" / "a.png")
    write_image(tmp_path / "stray.png")
    (tmp_path / "empty_cls").mkdir()
    r = check_dataset(tmp_path)
    notes = " ".join(r.notes)
    assert "empty class folder(s): empty_cls" in notes
    assert "outside any class folder" in notes
    assert r.imbalance()["all"] == float("inf")
    write_image(tmp_path / "solo" / "x" / "a.png")
    r2 = check_dataset(tmp_path / "solo")
    assert "only one class" in " ".join(r2.notes) and not r2.ok


def test_mixed_sizes_are_noted(image_folder, write_image):
    write_image(image_folder / "cat" / "big.png", h=20, w=10)
    r = check_dataset(image_folder)
    assert r.sizes == {"8×8": 10, "20×10": 1}
    assert any("different image sizes" in n for n in r.notes)


def test_inspect_file_cases(tmp_path, write_image, bad_files):
    write_image(tmp_path / "ok.jpg")
    info = inspect_file(tmp_path / "ok.jpg")
    assert (info.format, info.mode, info.width, info.error) == ("JPEG", "RGB", 8, None)
    assert inspect_file(bad_files("empty", tmp_path / "e.png")).error == "empty"
    assert inspect_file(bad_files("truncated", tmp_path / "t.jpg")).error == "truncated"


def test_main_check_prints_and_exits(messy, image_folder, tmp_path, capsys):
    code = main_check([str(messy), "--bad-files", str(tmp_path / "b.tsv"),
                       "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 1 and "LEAKAGE" in out and (tmp_path / "b.tsv").is_file()
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is False
    assert main_check([str(image_folder)]) == 0
    assert main_check([str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
