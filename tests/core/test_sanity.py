"""Training refuses what cannot train, warns once where the result will likely be wrong, and
names the cause of the common mistakes (issue 13 items 9-11)."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit
from cnnkit import layers
from cnnkit.data.loader import LayoutError
from cnnkit.train import sanity
from cnnkit.train.sanity import DataWarning, TrainingDataError, WeightsTooLargeError


def net(outputs=4, activation="softmax", shape=(8, 8, 3), loss="sparse_categorical_crossentropy"):
    model = cnnkit.Sequential([layers.Input(shape), layers.Conv2D(2, 3), layers.Flatten(),
                               layers.Dense(outputs, activation=activation)])
    return model.compile(optimizer="adam", loss=loss)


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (48, 8, 8, 3), dtype=np.uint8)


def fit_warnings(model, *args, **kwargs) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model.fit(*args, verbose=0, **kwargs)
    return [str(w.message) for w in seen if issubclass(w.category, DataWarning)]


# ------------------------------------------------------------------------- item 9: refusals

def test_one_class_is_refused_before_any_step(images):
    model = net()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TrainingDataError, match=r"all 48 training labels are class 2.*at least two"):
        model.fit(images, np.full(48, 2), epochs=1, verbose=0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_one_class_dataset_object_is_refused_naming_the_class(images):
    from types import SimpleNamespace
    one_class = SimpleNamespace(images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                                labels=torch.zeros(48, dtype=torch.long), class_names=["cats"])
    with pytest.raises(TrainingDataError, match=r"class 0 \('cats'\)"):
        net().fit(one_class, epochs=1, verbose=0)


def test_binary_crossentropy_refuses_labels_outside_0_1(images):
    model = net(1, "sigmoid", loss="binary_crossentropy")
    with pytest.raises(TrainingDataError, match=r"labels 0 or 1.*found 2, 3.*sparse_categorical_crossentropy.*Dense\(10"):
        model.fit(images, np.arange(48) % 10, epochs=1, verbose=0)
    with pytest.raises(TrainingDataError, match="labels 0 or 1"):
        model.evaluate(images, np.arange(48) % 10, verbose=0)


def test_binary_crossentropy_refuses_bad_labels_from_a_dataloader(images):
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, torch.arange(48) % 3), batch_size=16)
    with pytest.raises(TrainingDataError, match="labels 0 or 1"):
        net(1, "sigmoid", loss="binary_crossentropy").fit(loader, epochs=1, verbose=0)


def test_classification_loss_never_shows_negative_on_good_labels(images):
    model = net(1, "sigmoid", loss="binary_crossentropy")
    soft = np.linspace(0, 1, 48, dtype=np.float32)  # probabilities are valid BCE targets
    hist = model.fit(images, soft, epochs=2, verbose=0)
    assert min(hist.history["loss"]) >= 0


def test_sparse_crossentropy_refuses_fractional_labels(images):
    with pytest.raises(TrainingDataError, match="fractions such as 0.5"):
        net().fit(images, np.arange(48) % 4 + 0.5, epochs=1, verbose=0)


# ------------------------------------------------------------------------- item 10: warnings

def test_balanced_scaled_data_gives_no_warning(images):
    y = np.arange(48) % 4
    assert fit_warnings(net(), images, y, epochs=1, validation_data=(images, y)) == []
    assert fit_warnings(net(), images / 255.0, y, epochs=1) == []


def test_heavy_imbalance_warns_once_per_fit(images):
    y = np.zeros(48, dtype=np.int64)
    y[:2] = 1  # 46:2
    msgs = fit_warnings(net(2), images, y, epochs=3, batch_size=8)
    assert len([m for m in msgs if "imbalance" in m]) == 1
    assert "class 0 has 46 training images and class 1 only 2 (23:1)" in msgs[0]


def test_a_class_without_training_images_is_named(images):
    model = net()
    model.class_names = ["a", "b", "c", "d"]
    msgs = fit_warnings(model, images, np.arange(48) % 3, epochs=1)
    assert any("3 ('d') has no training images" in m for m in msgs)


def test_class_with_almost_no_validation_images_warns(images):
    y = np.arange(48) % 4
    vy = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3])  # class 3: one validation image
    msgs = fit_warnings(net(), images, y, epochs=1, validation_data=(images[:10], vy))
    assert len(msgs) == 1 and "almost no validation images (3: 1)" in msgs[0]


def test_float_pixels_in_0_255_warn(images):
    msgs = fit_warnings(net(), images.astype(np.float32), np.arange(48) % 4, epochs=1)
    assert len(msgs) == 1 and "did you forget to divide by 255?" in msgs[0]


def test_the_pixel_range_check_reads_an_nhwc_view_without_copying_it(images):
    """fit sees NHWC arrays as N×C×H×W views; min()/max() of such a view copied it whole
    first (0.4 s of a 50,000-image fit). The check must find the range in place."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Calls(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    view = torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2)
    assert not view.is_contiguous()
    model = net()
    with Calls() as calls, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sanity._warn_unscaled_floats(model, view)
    assert not [op for op in calls.ops if "clone" in op or "copy" in op], calls.ops
    assert any("divide by 255" in str(w.message) for w in caught)
    assert sanity._in_memory_order(view).is_contiguous()
    odd = view[:, :, ::2]  # not a permutation of contiguous memory: left as it is
    assert sanity._in_memory_order(odd) is odd


def test_float_0_255_is_right_for_a_model_that_rescales_itself(images):
    model = cnnkit.Sequential([layers.Input((8, 8, 3)), layers.RandomFlip(),
                               layers.Rescaling(1 / 255), layers.Conv2D(2, 3), layers.Flatten(),
                               layers.Dense(4)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert fit_warnings(model, images.astype(np.float32), np.arange(48) % 4, epochs=1) == []


def test_channels_first_input_shape_warns(images):
    model = net(shape=(3, 8, 8))
    msgs = fit_warnings(model, images.transpose(0, 3, 1, 2), np.arange(48) % 4, epochs=1)
    assert len(msgs) == 1 and "use input_shape=(8, 8, 3)" in msgs[0]


def test_warnings_reach_the_cli_once(tmp_path, capsys):
    """`cnnkit train` goes through Model.fit: a folder with 40:4 images warns, once."""
    from cnnkit.cli import main
    rng = np.random.default_rng(0)
    for name, n in (("big", 40), ("small", 4)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)).save(
                tmp_path / "data" / name / f"{i}.png")
    rc = main(["train", "--data", str(tmp_path / "data"), "--epochs", "2", "--val-split", "0",
               "--output", str(tmp_path / "runs"), "--no-report", "--verbose", "0",
               "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0
    assert err.count("heavy class imbalance") == 1, err


def test_cli_refuses_a_one_class_folder_in_one_line(tmp_path, capsys):
    from cnnkit.cli import main
    (tmp_path / "data" / "only").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(np.full((28, 28, 3), i * 10, np.uint8)).save(tmp_path / "data" / "only" / f"{i}.png")
    rc = main(["train", "--data", str(tmp_path / "data"), "--epochs", "1", "--val-split", "0",
               "--output", str(tmp_path / "runs"), "--no-report", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("cnnkit train: ") and "at least two classes" in err[-1], err
    assert not any("Traceback" in line for line in err)


# ------------------------------------------------------------------------- item 11: mistakes

def test_string_labels_say_how_to_map_them(images):
    y = np.array(["cat", "dog", "bird"] * 16)
    with pytest.raises(TrainingDataError, match=r"strings \(e.g. 'cat'\).*np.unique\(y, return_inverse=True\)"):
        net().fit(images, y, epochs=1, verbose=0)


@pytest.mark.parametrize("shape,got", [((32, 32, 1), "32x32x1"), ((1, 32, 32), "32x32x1"),
                                       ((32, 32), "32x32x1")])
def test_predict_one_image_of_the_wrong_size_names_the_size(shape, got):
    model = net(shape=(28, 28, 1))
    with pytest.raises(LayoutError, match=f"one image of {got} but model 'sequential' takes 28x28x1"):
        model.predict(np.zeros(shape, np.uint8))


def test_predict_right_size_single_image_and_batches_still_work():
    model = net(shape=(28, 28, 1))
    assert model.predict(np.zeros((28, 28, 1), np.uint8)).shape == (4,)
    assert model.predict(np.zeros((28, 28), np.uint8)).shape == (4,)
    assert model.predict(np.zeros((5, 28, 28), np.uint8)).shape == (5, 4)


def test_layer_too_large_for_memory_is_refused_before_allocating():
    with pytest.raises(WeightsTooLargeError, match=r"layer 'dense' \(Dense\) would need 3.1 TB .*1,000,000 x 786,432 float32"):
        cnnkit.Sequential([layers.Input((512, 512, 3)), layers.Flatten(), layers.Dense(1_000_000)])


def test_layer_size_is_compared_with_free_memory(monkeypatch):
    monkeypatch.setattr(sanity, "available_memory", lambda: 100 * 2**20)  # 100 MiB free
    with pytest.raises(WeightsTooLargeError, match=r"'big' \(Conv2D\) would need 151.0 MB.*104.9 MB"):
        cnnkit.Sequential([layers.Input((8, 8, 1024)), layers.Conv2D(4096, 3, name="big")])
    cnnkit.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(64, 3)])  # small: fine
