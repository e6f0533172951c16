"""Confusion matrices people can read: two classes at a readable size, the whole title inside the picture."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("matplotlib")


@pytest.mark.parametrize("labels", [("woman", "man"), ("angry", "disgust", "fear", "happy", "sad", "surprise",
                                                       "neutral")])
def test_the_title_fits_and_the_cells_show_share_and_count(tmp_path, monkeypatch, labels):
    from matplotlib.figure import Figure

    from train_host.plots import confusion_matrix_png

    inside = []
    original = Figure.savefig

    def check(self, *args, **kwargs):
        renderer = self.canvas.get_renderer()
        ax = self.axes[0]
        box = ax.title.get_window_extent(renderer)
        inside.append(bool(box.x0 >= 0 and box.x1 <= self.bbox.width and box.y1 <= self.bbox.height))
        texts = [t.get_text() for t in ax.texts]
        inside.append(texts)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", check)
    n = len(labels)
    matrix = np.arange(1, n * n + 1).reshape(n, n) * 37
    title = f"{'gender' if n == 2 else 'emotion'}_mini_xception int8: 91.5% on utkface_gender_gray64_test.npz"
    out = confusion_matrix_png(matrix, labels, tmp_path / "c.png", title)
    image = cv2.imread(str(out))
    assert image.shape[1] >= 600 and image.shape[0] >= 450  # the 2x2 matrix is no longer a thumbnail
    assert inside[0] is True
    share = matrix[0, 0] / matrix[0].sum()
    assert inside[1][0] == f"{share:.2f}\n({matrix[0, 0]})"


def test_long_titles_break_after_the_model_name():
    from train_host.plots import _wrap_title

    wrapped = _wrap_title("gender_mini_xception int8: 91.5% on utkface_gender_gray64_test.npz")
    assert wrapped == "gender_mini_xception int8:\n91.5% on utkface_gender_gray64_test.npz"
    assert _wrap_title("short: title") == "short: title"
