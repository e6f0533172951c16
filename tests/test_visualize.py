"""The guided back-prop grid is readable on its own: labelled columns and rows, the prediction under each face.

No TensorFlow here: the grid is drawn from real face crops of the committed
samples and stand-in maps (the maps' maths needs a Keras model; the layout
does not).
"""

from __future__ import annotations

import cv2
import numpy as np

from train_host.visualize import Picked, grid_figure, grid_png


def faces(samples) -> np.ndarray:
    gray = cv2.cvtColor(cv2.imread(str(samples / "astronaut.jpg")), cv2.COLOR_BGR2GRAY)
    crop = cv2.resize(gray[67:159, 178:270], (48, 48))  # the face analyze finds in this photo
    return np.stack([crop, crop[:, ::-1], crop[::-1]])


def test_columns_rows_and_predictions_are_labelled(samples, tmp_path):
    batch = faces(samples)
    picked = {"happy": Picked(batch, ["happy", "happy", "sad"], [0.99, 0.93, 0.41]),
              "sad": Picked(batch[:2], ["sad", "sad"], [0.85, 0.6])}
    maps = {label: row.faces.astype(np.float32) - 128 for label, row in picked.items()}
    fig = grid_figure(picked, maps, "Guided back-propagation of m.keras")
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles == ["input", "guided back-prop"] * 3
    assert [fig.axes[r * 6].get_ylabel() for r in range(2)] == ["happy", "sad"]
    under = [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()]
    assert under == ["predicted happy 0.99", "predicted happy 0.93", "predicted sad 0.41",
                     "predicted sad 0.85", "predicted sad 0.60"]
    assert fig._suptitle.get_text() == "Guided back-propagation of m.keras"
    out = grid_png(picked, maps, tmp_path / "grid.png", "t")
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[1] > picture.shape[0]  # three column pairs, two rows
