import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnkit import explain as E
from cnnkit.models.base import Model


class PatchDetector(nn.Module):
    """Class 0 = 'bright pixels somewhere', class 1 = the opposite; evidence is local."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()
            self.head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        a = torch.relu(self.conv(x))  # N×1×H×W
        return self.head(a.mean(dim=(2, 3)))


def patch_image():
    img = np.zeros((32, 32), dtype=np.uint8)
    img[20:28, 4:12] = 255
    return img


def test_heatmap_points_at_the_evidence():
    model = PatchDetector()
    heat = E.grad_cam(model, patch_image(), class_index=0, layer="conv")
    assert heat.shape == (32, 32) and heat.dtype == np.float32
    assert 0.0 <= heat.min() and heat.max() == pytest.approx(1.0)
    r, c = np.unravel_index(heat.argmax(), heat.shape)
    assert 20 <= r < 28 and 4 <= c < 12
    inside = heat[20:28, 4:12].mean()
    outside = np.delete(heat.reshape(-1), np.ravel_multi_index(np.nonzero(
        np.pad(np.ones((8, 8)), ((20, 4), (4, 20)))), heat.shape)).mean()
    assert inside > 0.9 and outside < 0.1


def test_negative_evidence_gives_an_empty_map():
    heat = E.grad_cam(PatchDetector(), patch_image(), class_index=1, layer="conv")
    assert np.all(heat == 0)


def test_default_class_is_the_prediction(model, image):
    ex = E.explain(model, image)
    probs = model.predict_proba(image[None])
    assert ex.class_indices[0] == probs.argmax()
    np.testing.assert_allclose(ex.probabilities[0], probs[0], atol=1e-5)
    assert ex.heatmaps.shape == (1, 16, 16)


def test_auto_layer_follows_the_data_flow(model, image):
    # the ReLU after the last conv (in-place, so the hook's clone matters)
    assert E.find_target_layer(model, image) == "module.4"
    # named as in the user's own module, without cnnkit's "module." wrapper; found again by it
    assert E.explain(model, image).layer == "4"
    assert E.explain(model, image, layer="4").layer == "4"


def test_auto_layer_on_a_resnet_skips_1x1_maps():
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(weights=None, num_classes=3)
    assert E.find_target_layer(net, np.zeros((64, 64, 3), np.uint8)) == "layer4"  # 2×2
    assert E.find_target_layer(net, np.zeros((32, 32, 3), np.uint8)) == "layer3"  # 1×1 at layer4


def test_layer_by_name_module_and_errors(model, image):
    a = E.grad_cam(model, image, layer="module.3")
    b = E.grad_cam(model, image, layer=model.module[3])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="conv layers"):
        E.grad_cam(model, image, layer="nope")
    with pytest.raises(ValueError, match="N×C×H×W"):
        E.grad_cam(model, image, layer="module.7")
    with pytest.raises(ValueError, match="class_index"):
        E.grad_cam(model, image, class_index=4)


def test_frozen_weights_and_mode_restored(model, image):
    for p in model.parameters():
        p.requires_grad_(False)
    model.train()
    heat = E.grad_cam(model, image, class_index=2)
    assert heat.max() > 0 or np.all(heat == 0)
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_plain_module_gets_scaled_floats():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 3))
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    a = E.grad_cam(net, img)
    b = E.grad_cam(net, torch.from_numpy(img).permute(2, 0, 1).float() / 255)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_class_scores_variants():
    x = torch.randn(2, 3)

    class Probs(nn.Module):
        output_activation = "softmax"

        def forward(self, x):
            return torch.softmax(x, 1)

    s, p = E.class_scores(Probs(), x)
    torch.testing.assert_close(p, torch.softmax(x, 1))
    s, p = E.class_scores(nn.Identity(), x[:, :1])  # one logit: binary
    torch.testing.assert_close(p[:, 1], torch.sigmoid(x[:, 0]))
    assert p.shape == (2, 2)


def test_overlay_shapes(image):
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1
    out = E.overlay(image, heat)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    grey = E.overlay(image[:, :, 0], np.ones((16, 16)))
    assert grey.shape == (16, 16, 3)
    # float image in [0, 1] and a C×H×W tensor give the same picture as uint8 H×W×C
    t = torch.from_numpy(image).permute(2, 0, 1)
    np.testing.assert_array_equal(E.overlay(t, heat), out)


def test_feature_maps_and_plots(model, image, tmp_path):
    maps = E.feature_maps(model, image)  # first conv, after its ReLU
    assert E.find_target_layer(model, image, "first") == "module.1"
    assert maps.shape == (4, 14, 14) and maps.min() >= 0
    assert E.feature_maps(model, image, "module.3").shape == (8, 5, 5)
    p = E.plot_feature_maps(maps, tmp_path / "maps.png")
    assert Image.open(p).format == "PNG"
    p = E.plot_filters(model, tmp_path / "filters.png")
    assert Image.open(p).size[0] > 50
    grey = Model(nn.Sequential(nn.Conv2d(1, 6, 5), nn.Flatten(), nn.LazyLinear(2)))
    assert E.plot_filters(grey, tmp_path / "f1.png").exists()


def test_save_explanations(model, tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    paths = E.save_explanations(model, images, tmp_path / "out", labels=[0, 1, 2, 3, 0],
                                batch_size=2)
    assert [p.name for p in paths] == [f"{i:03d}_gradcam.png" for i in range(5)]
    w, h = Image.open(paths[0]).size
    assert w > 2 * 192 and h > 192  # small images are enlarged for viewing


def test_explain_files(model, tmp_path):
    rng = np.random.default_rng(3)
    files = []
    for name, size in (("cat", (40, 30)), ("dog", (16, 16))):
        files.append(tmp_path / f"{name}.png")
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(files[-1])
    written = E.explain_files(model, files, tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["cat_features.png", "cat_gradcam.png", "dog_features.png",
                     "dog_gradcam.png", "filters.png"]


def test_keras_facade_model_uses_keras_layer_names(tmp_path):
    import cnnkit
    from cnnkit import layers

    torch.manual_seed(0)
    model = cnnkit.Sequential([  # seed 003, at 16×16 to stay quick
        layers.Input((16, 16, 3)), layers.Conv2D(8, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)), layers.Conv2D(8, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dense(3, activation="softmax")])
    img = np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    ex = E.explain(model, img)
    assert ex.layer == "conv2d_1"  # after the ReLU, as Keras' Conv2D(activation='relu') gives
    np.testing.assert_allclose(ex.probabilities, model.predict(img[None]), atol=1e-5)
    assert E.explain(model, img, layer="conv2d").layer == "conv2d"
    assert E.feature_maps(model, img, "conv2d").min() >= 0  # post-activation maps
    assert E.plot_filters(model, tmp_path / "f.png").exists()


@pytest.fixture
def saved_figures(monkeypatch):
    """The matplotlib figures saved during the test."""
    from matplotlib.figure import Figure

    saved, original = [], Figure.savefig

    def keep(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


def test_gradcam_png_is_large_titled_with_the_file_and_has_a_colour_bar(model, tmp_path,
                                                                        saved_figures):
    picture = tmp_path / "holiday photo.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(
        picture)
    written = E.explain_files(model, [picture], tmp_path / "out", filters=False)
    gradcam = next(p for p in written if p.name == "holiday photo_gradcam.png")
    assert Image.open(gradcam).size[0] >= 800
    fig = saved_figures[0]
    title = fig.get_suptitle()
    assert title.startswith("holiday photo.png: predicted ") and title.endswith("%)"), title
    image_ax, overlay_ax, bar_ax = fig.axes
    assert overlay_ax.get_title() == "Grad-CAM at 4"
    assert bar_ax.get_ylabel() == "share of the strongest evidence"
    assert [t.get_text() for t in bar_ax.get_yticklabels()][0] in ("0.0", "0")
    assert saved_figures[1].get_suptitle() == "holiday photo.png: feature maps of 1"  # conv 0 + ReLU


def test_zoo_layers_are_named_by_block(tmp_path, saved_figures):
    from cnnkit.models.registry import create

    torch.manual_seed(0)
    vgg = create("vgg-small", num_classes=3, input_shape=(16, 16, 3))
    img = np.random.default_rng(6).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert E.explain(vgg, img).layer == "block3"  # module.features.2: the third conv block
    assert E.explain(vgg, img, layer="block2").layer == "block2"
    assert E.explain(vgg, img, layer="block2_conv1").layer == "block2_conv1"
    first = E.find_target_layer(vgg, img, "first")  # conv, BatchNorm, ReLU of the first block
    assert first == "module.features.0.2" and E.layer_label(vgg, first) == "block1_conv1"
    E.plot_filters(vgg, tmp_path / "filters.png")
    assert saved_figures[-1].get_suptitle() == "block1_conv1: 32 filters 3×3"
    with pytest.raises(ValueError, match=r"no layer named 'block9'; conv layers: \['block1_conv1'"):
        E.explain(vgg, img, layer="block9")
