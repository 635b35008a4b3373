"""compile / fit / evaluate / predict / save on the facade and on plain PyTorch modules."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnkit
from cnnkit import layers
from cnnkit.data.loader import LayoutError
from cnnkit.models.saving import ModelFileError


def small_cnn(classes=4, shape=(8, 8, 3)):
    return cnnkit.Sequential([
        layers.Input(shape), layers.Conv2D(8, 3, activation="relu", padding="same"),
        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(classes, activation="softmax"),
    ], name="small")


class SeedCNN(nn.Module):
    """Seed 001's PyTorch CNN, dropout and all (3×32×32 input)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.pool = nn.MaxPool2d(2, 2)
        self.dropout = nn.Dropout(p=0.5)
        self.fc1 = nn.Linear(64 * 6 * 6, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.dropout(self.pool(F.relu(self.conv1(x))))
        x = self.dropout(self.pool(F.relu(self.conv2(x))))
        x = x.view(-1, 64 * 6 * 6)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


def test_fit_history_keys_and_learning(tiny_images):
    x, y = tiny_images
    cnnkit.utils.set_random_seed(0)
    model = small_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", "top_k_categorical_accuracy"])
    hist = model.fit(x, y, epochs=8, batch_size=16, validation_data=(x, y), verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "top_k_categorical_accuracy", "val_loss",
                                 "val_accuracy", "val_top_k_categorical_accuracy"}
    assert hist.epoch == list(range(8))
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] >= 0.9


def test_evaluate_return_forms(tiny_images):
    x, y = tiny_images
    model = small_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, acc = model.evaluate(x, y, verbose=0)
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    assert logs == {"loss": pytest.approx(loss), "accuracy": pytest.approx(acc)}
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_predict_probabilities_batch_and_single(tiny_images):
    x, _ = tiny_images
    model = small_cnn()
    probs = model.predict(x)
    assert probs.shape == (64, 4) and isinstance(probs, np.ndarray)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    one = model.predict(x[3])
    assert one.shape == (4,)
    np.testing.assert_allclose(one, probs[3], rtol=1e-5, atol=1e-6)
    # uint8 pixels and the tutorial's float / 255 give the same answer
    np.testing.assert_allclose(model.predict(x.astype("float32") / 255), probs, rtol=1e-4, atol=1e-6)


def test_one_hot_and_integer_labels_work_with_either_loss(tiny_images):
    x, y = tiny_images
    one_hot = cnnkit.utils.to_categorical(y, 4)
    for loss, labels in [("sparse_categorical_crossentropy", one_hot), ("categorical_crossentropy", y)]:
        cnnkit.utils.set_random_seed(1)
        model = small_cnn()
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        hist = model.fit(x, labels, epochs=2, verbose=0)
        assert np.isfinite(hist.history["loss"]).all()


def test_labels_out_of_range_refused_before_training(tiny_images):
    x, y = tiny_images
    model = small_cnn(classes=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"\[0, 3\).*3 outputs"):
        model.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


class CountingNet(nn.Module):
    """A plain module (BatchNorm included) whose output size is only known by running it."""

    def __init__(self, classes=3):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, classes)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.head(F.adaptive_avg_pool2d(torch.relu(self.bn(self.conv(x))), 1).flatten(1))


def test_labels_checked_for_a_wrapped_module_without_a_dummy_forward(tiny_images):
    x, y = tiny_images  # 64 images, labels 0..3
    torch.manual_seed(0)
    net = CountingNet(classes=3)
    model = cnnkit.Model(net, input_shape=(8, 8, 3), name="counting")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"\[0, 3\).*'counting' with 3 outputs"):
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert net.calls == 1  # the first real batch, no probe; no step taken, BatchNorm put back
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    fresh = cnnkit.Model(CountingNet(classes=3), input_shape=(8, 8, 3), name="fresh")
    fresh.compile(optimizer="adam", loss="categorical_crossentropy")
    soft = np.full((64, 4), 0.25, np.float32)  # soft rows stay rows (one-hot ones become indices)
    with pytest.raises(ValueError, match="labels have 4 columns but model 'fresh' has 3 outputs"):
        fresh.evaluate(x, soft, verbose=0)
    assert fresh.module.calls == 1
    # Good labels: one forward per batch and nothing else, now and on later calls (the
    # count learned on the first batch is checked up front from then on).
    net.calls = 0
    model.fit(x, y % 3, epochs=1, batch_size=16, validation_data=(x[:16], y[:16] % 3), verbose=0)
    assert net.calls == 4 + 1
    net.calls = 0
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        model.evaluate(x, y, verbose=0)
    assert net.calls == 0
    # A new head changes what the remembered count applies to: checked on the next batch again.
    net.head = nn.Linear(4, 4)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert model._num_outputs() == 4


def test_sequential_label_check_runs_no_forward(tiny_images, monkeypatch):
    x, y = tiny_images
    model = small_cnn(classes=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    monkeypatch.setattr(type(model), "forward", lambda self, x: pytest.fail("forward ran"))
    monkeypatch.setattr(type(model), "forward_logits", lambda self, x: pytest.fail("forward ran"))
    with pytest.raises(ValueError, match=r"\[0, 3\).*3 outputs"):
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 3\).*3 outputs"):
        model.evaluate(x, y, verbose=0)


def test_data_shape_mismatch_names_both_shapes(tiny_images):
    model = small_cnn(shape=(28, 28, 1))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = tiny_images
    with pytest.raises(LayoutError, match=r"\(None, 28, 28, 1\).*\(64, 8, 8, 3\)"):
        model.fit(x, y, verbose=0)


def test_nan_loss_stops_and_keeps_last_good_weights(tiny_images):
    x, y = tiny_images
    x = x.astype("float32") / 255
    model = small_cnn()
    model.compile(optimizer="sgd", learning_rate=0.01, loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    good = [w.copy() for w in model.get_weights()]
    x_bad = x.copy()
    x_bad[5] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN"):
        hist = model.fit(x_bad, y, epochs=3, verbose=0, shuffle=False)
    assert hist.epoch == []
    for a, b in zip(good, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_validation_split_takes_the_last_fraction(tiny_images):
    x, y = tiny_images
    model = small_cnn()
    model.compile(optimizer="sgd", learning_rate=0.0, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0)
    val = model.evaluate(x[48:], y[48:], return_dict=True, verbose=0)
    assert hist.history["val_loss"][0] == pytest.approx(val["loss"], rel=1e-5)


def test_class_weight_changes_the_loss(tiny_images):
    x, y = tiny_images
    losses = []
    for cw in (None, {0: 10.0, 1: 1.0, 2: 1.0, 3: 1.0}):
        cnnkit.utils.set_random_seed(0)
        model = small_cnn()
        model.compile(optimizer="sgd", learning_rate=0.0, loss="sparse_categorical_crossentropy")
        losses.append(model.fit(x, y, epochs=1, class_weight=cw, verbose=0).history["loss"][0])
    assert losses[1] > losses[0] * 2


def test_same_seed_same_result_on_cpu(tiny_images):
    x, y = tiny_images
    runs = []
    for _ in range(2):
        cnnkit.utils.set_random_seed(123)
        model = small_cnn()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_save_load_round_trip_identical_predictions(tmp_path, tiny_images):
    x, y = tiny_images
    model = small_cnn()
    model.class_names = ["tl", "tr", "bl", "br"]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = cnnkit.load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.class_names == ["tl", "tr", "bl", "br"]
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]


def test_corrupt_or_foreign_model_files_are_refused(tmp_path, tiny_images):
    model = small_cnn()
    model.save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelFileError, match="corrupt"):
        cnnkit.load_model(tmp_path / "m")
    model.save(tmp_path / "v")
    cfg = (tmp_path / "v" / "config.json")
    cfg.write_text(cfg.read_text().replace('"version": 1', '"version": 99'))
    with pytest.raises(ModelFileError, match="version 99"):
        cnnkit.load_model(tmp_path / "v")
    with pytest.raises(ModelFileError, match="not a cnnkit model"):
        cnnkit.load_model(tmp_path)


def test_weights_file_is_not_pickle(tmp_path):
    model = small_cnn()
    model.save(tmp_path / "m")
    head = (tmp_path / "m" / "model.safetensors").read_bytes()[:16]
    assert not head.startswith(b"\x80") and not head.startswith(b"PK")  # neither pickle nor torch zip


def test_plain_module_trains_through_the_same_engine():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.random((40, 3, 32, 32), dtype=np.float32))  # NCHW tensors, PyTorch style
    y = torch.tensor(np.arange(40) % 10)
    cnnkit.utils.set_random_seed(0)
    model = cnnkit.Model(SeedCNN(), input_shape=(32, 32, 3))
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    logits = model.predict(x[:5])  # what the module computes (Keras's contract): logits
    probs = model.predict_proba(x[:5])
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(logits), 1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # NHWC numpy works for the same model
    assert model.predict(x[:5].permute(0, 2, 3, 1).numpy()).shape == (5, 10)


def test_trainer_with_a_dataloader_and_plain_module_save(tmp_path):
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.random((32, 3, 32, 32), dtype=np.float32))
    y = torch.tensor(np.arange(32) % 10)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True)
    trainer = cnnkit.Trainer(SeedCNN(), optimizer="sgd", learning_rate=0.01, input_shape=(32, 32, 3))
    hist = trainer.fit(loader, epochs=2, validation_data=loader, verbose=0)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(hist.history)
    assert set(trainer.evaluate(loader)) == {"loss", "accuracy"}
    trainer.save(tmp_path / "plain")
    again = cnnkit.load_model(tmp_path / "plain", module=SeedCNN())
    np.testing.assert_array_equal(again.predict(x[:4]), trainer.model.predict(x[:4]))


def test_plain_module_summary(capsys):
    model = cnnkit.Model(SeedCNN(), input_shape=(32, 32, 3), name="seed001")
    model.summary()
    text = capsys.readouterr().out
    # Keras's names and channels-last shapes, not the module's attribute names and NCHW
    assert "conv2d (Conv2D)" in text and "(None, 30, 30, 32)" in text and "conv1" not in text
    total = sum(p.numel() for p in model.parameters())
    assert f"Total params: {total:,}" in text


def test_softmax_output_with_from_logits_warns_and_trains(tiny_images):
    x, y = tiny_images
    model = small_cnn()
    with pytest.warns(UserWarning, match="pre-activation"):
        model.compile(optimizer="adam",
                      loss=cnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert np.isfinite(model.fit(x, y, epochs=1, verbose=0).history["loss"][0])


def test_uncompiled_fit_says_what_to_do(tiny_images):
    with pytest.raises(RuntimeError, match="compile"):
        small_cnn().fit(*tiny_images)


def test_to_categorical_and_pick_device():
    np.testing.assert_array_equal(cnnkit.utils.to_categorical([[1], [0]], 3), [[0, 1, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="outside"):
        cnnkit.utils.to_categorical([3], 3)
    assert cnnkit.utils.pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert cnnkit.utils.pick_device().type in ("cpu", "mps")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            cnnkit.utils.pick_device("cuda")


def test_load_model_compiles_again_so_evaluate_works(tmp_path, tiny_images):
    x, y = tiny_images
    model = small_cnn()
    model.compile(optimizer="sgd", learning_rate=0.05, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m")
    loaded = cnnkit.load_model(tmp_path / "m")
    assert loaded.evaluate(x, y, return_dict=True, verbose=0) == pytest.approx(
        model.evaluate(x, y, return_dict=True, verbose=0))
    assert loaded.learning_rate == pytest.approx(0.05)
    assert not cnnkit.load_model(tmp_path / "m", compile=False).compiled


def test_fit_on_a_grayscale_folder(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    model = cnnkit.Sequential([layers.Input((8, 8, 1)), layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    hist = model.fit(str(tmp_path), epochs=1, verbose=0)
    assert len(hist.epoch) == 1 and model.class_names == ["a", "b"]
