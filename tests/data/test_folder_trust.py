"""Class folders with links, loops, special files, undecodable names and hidden files; EXIF
orientation; a cache that notices rewrites (issue 13 items 5, 6 and 7)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnkit.data.check import check_dataset
from cnnkit.data.decode import decode_image
from cnnkit.data.folder import image_dataset_from_directory
from cnnkit.data.layout import FolderLayoutError, display_path, scan_folder

BAD_NAME = os.fsdecode(b"\xff\xfe.png")  # not UTF-8: Python keeps the bytes as surrogates


@pytest.fixture
def messy(tmp_path, write_image):
    """root/a, root/b: 3 good PNGs each, a good PNG whose name is not UTF-8, and every kind
    of entry that is not an image file."""
    root = tmp_path / "messy"
    for c in "ab":
        for i in range(3):
            write_image(root / c / f"{i}.png", seed=ord(c) * 10 + i)
    write_image(root / "b" / BAD_NAME, seed=99)
    os.symlink("loop.png", root / "a" / "loop.png")          # a link to itself
    os.symlink("nowhere.png", root / "a" / "dangling.png")   # a link to nothing
    os.symlink(".", root / "a" / "again")                    # a folder link back to its folder
    os.mkfifo(root / "a" / "pipe.png")                       # reading it would block forever
    (root / "b" / ".DS_Store").write_bytes(b"junk")
    (root / "b" / "._0.png").write_bytes(b"AppleDouble")
    return root


def _reasons(pairs):
    return {os.path.basename(p): why for p, why in pairs}


@pytest.mark.parametrize("follow_links", [False, True])
def test_the_walk_names_each_problem_and_keeps_the_images(messy, follow_links):
    layout = scan_folder(messy, follow_links=follow_links)
    names = sorted(os.path.basename(e.path) for e in layout.files["all"])
    assert names == sorted(["0.png", "1.png", "2.png"] * 2 + [BAD_NAME])
    why = _reasons(layout.unlisted["all"])
    assert why["loop.png"].startswith("symlink loop")
    assert why["dangling.png"].startswith("dangling symlink")
    assert why["pipe.png"].startswith("a FIFO")
    assert why["again"] == ("symlink loop: a folder already read" if follow_links else
                            "symlinked folder, not followed (pass follow_links=True to read it)")
    assert sorted(os.path.basename(p) for p in layout.hidden) == [".DS_Store", "._0.png"]


def test_loading_keeps_the_good_images_and_lists_the_rest(messy):
    with pytest.warns(UserWarning, match="skipped 4 of 11 files"):
        ds = image_dataset_from_directory(messy, shuffle=False)
    assert len(ds) == 7 and ds.class_counts() == {"a": 3, "b": 4}
    assert any(f.endswith(BAD_NAME) for f in ds.files)
    assert set(_reasons(ds.skipped)) == {"loop.png", "dangling.png", "again", "pipe.png"}
    again = image_dataset_from_directory(messy, shuffle=False, verbose=False)  # from the cache
    assert torch_equal(again.images, ds.images) and len(again.skipped) == 4


def torch_equal(a, b):
    return a.shape == b.shape and bool((a == b).all())


def test_cnnkit_train_data_reads_it(messy):
    from cnnkit.config import TrainConfig
    from cnnkit.experiment import load_data
    data = load_data(TrainConfig(data=str(messy), val_split=0.3).validate())
    assert len(data.train[0]) + len(data.val[0]) == 7
    assert any("4 unreadable files were skipped" in n for n in data.notes)


def test_check_names_each_problem_and_writes_names_escaped(messy, tmp_path):
    report = check_dataset(messy)
    kinds = {(os.path.basename(p.path), p.kind) for p in report.problems}
    assert {("loop.png", "not_read"), ("dangling.png", "not_read"), ("again", "not_read"),
            ("pipe.png", "not_read"), (BAD_NAME, "bad_name")} <= kinds
    assert report.readable == 7 and report.ok
    text = report.summary()
    text.encode("utf-8")  # printable: no surrogates left
    assert "b/\\xff\\xfe.png" in text and "2 hidden files" in text
    tsv = report.write_bad_files(tmp_path / "bad.tsv").read_bytes().decode("utf-8")
    assert f"{display_path(str(messy))}/b/\\xff\\xfe.png\tbad_name\t" in tsv


def _cnnkit(*args):
    """``python -m cnnkit ARGS`` with a strict UTF-8 stdout (as in a UTF-8 locale's terminal,
    where printing an undecodable name raises)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "cnnkit", *map(str, args)], capture_output=True,
                          env=env, timeout=120)


def test_cnnkit_check_prints_it_without_crashing(messy, tmp_path):
    proc = _cnnkit("check", messy, "--bad-files", tmp_path / "bad.tsv")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = proc.stdout.decode("utf-8")
    assert "symlink loop" in out and "dangling symlink" in out and "\\xff\\xfe.png" in out
    assert b"\\xff\\xfe.png\tbad_name" in (tmp_path / "bad.tsv").read_bytes()


def test_cnnkit_predict_prints_undecodable_names_escaped(messy, tmp_path):
    import cnnkit
    from cnnkit import layers
    model = cnnkit.Sequential([layers.Input((8, 8, 3)), layers.Flatten(), layers.Dense(2)])
    model.class_names = ["a", "b"]
    model.save(tmp_path / "m")
    proc = _cnnkit("predict", tmp_path / "m", messy / "b")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert "b/\\xff\\xfe.png" in proc.stdout.decode("utf-8")


def test_a_class_folder_name_that_is_not_utf8_is_refused_in_one_line(tmp_path, write_image):
    write_image(tmp_path / "d" / "ok" / "0.png")
    write_image(tmp_path / "d" / os.fsdecode(b"caf\xe9") / "0.png")
    with pytest.raises(FolderLayoutError, match=r"caf\\xe9 are not valid UTF-8; rename") as err:
        scan_folder(tmp_path / "d")
    assert "\n" not in str(err.value)
    str(err.value).encode("utf-8")


# ---------------------------------------------------------------------------- EXIF orientation

def _sideways_photo(path, orientation=6, fmt="JPEG"):
    """A 20×40 (H×W) picture, left half white, stored with an EXIF orientation tag."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, format=fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    return path


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied(tmp_path, fmt):
    path = _sideways_photo(tmp_path / f"p.{fmt.lower()}", 6, fmt)  # 6: turn 90° clockwise to view
    upright = decode_image(path)
    assert upright.shape == (40, 20, 3)
    assert upright[5, 10, 0] > 200 and upright[35, 10, 0] < 50  # the left half is now on top
    small = decode_image(path, size=(8, 4))  # JPEG draft mode picks the scale of the upright size
    assert small.shape == (8, 4, 3) and small[1, 2, 0] > 200 and small[6, 2, 0] < 50
    flipped = decode_image(_sideways_photo(tmp_path / f"q.{fmt.lower()}", 3, fmt))  # 180°
    assert flipped.shape == (20, 40, 3) and flipped[10, 35, 0] > 200 and flipped[10, 5, 0] < 50


def test_the_service_sees_the_upright_size(tmp_path):
    from cnnkit.serve.images import image_size
    data = _sideways_photo(tmp_path / "p.jpg").read_bytes()
    assert image_size(data) == (20, 40)  # (width, height) as shown


# ---------------------------------------------------------------------------- cache

def _bmp(seed):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, "BMP")
    return buf.getvalue()


def test_the_cache_notices_a_rewrite_with_size_and_mtime_put_back(tmp_path, private_cache):
    root = tmp_path / "pets"
    for c, seed in (("cat", 1), ("dog", 2)):
        (root / c).mkdir(parents=True)
        (root / c / "0.bmp").write_bytes(_bmp(seed))
    target = root / "cat" / "0.bmp"
    first = image_dataset_from_directory(root, shuffle=False)
    assert list((private_cache / "folders").glob("*.npy"))
    st = os.stat(target)
    new = _bmp(3)
    assert len(new) == st.st_size  # same size
    with open(target, "r+b") as f:  # rewritten in place: same inode, same size
        f.write(new)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the mtime put back
    assert os.stat(target).st_mtime_ns == st.st_mtime_ns
    second = image_dataset_from_directory(root, shuffle=False)
    expected = np.asarray(Image.open(io.BytesIO(new))).transpose(2, 0, 1)
    assert np.array_equal(second.images[0].numpy(), expected)
    assert not torch_equal(first.images, second.images)
