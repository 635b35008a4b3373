"""An exported model given one image of the wrong size names the size it takes, instead of
reading the image as a batch (issue 13 item 11)."""

import numpy as np
import pytest

pytest.importorskip("onnx")

from cnnkit.data.loader import LayoutError  # noqa: E402
from cnnkit.export import export, load_exported  # noqa: E402
from model_helpers import tiny_model  # noqa: E402


def test_exported_predict_names_the_size_for_one_wrong_image(tmp_path):
    result = export(tiny_model(), tmp_path / "m.pt", check=False)
    predictor = load_exported(result.path)
    with pytest.raises(LayoutError, match="one image of 20x20x3 but model .* takes 16x16x3"):
        predictor.predict(np.zeros((20, 20, 3), np.uint8))
    assert predictor.predict(np.zeros((16, 16, 3), np.uint8)).shape == (4,)
