"""plots.to_png: the stored PNG of a figure (256-colour palette, exactly the figure's size in pixels)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from mnist_pipeline.ml.reports.plots import DPI, confusion_matrix_heatmap, style, to_png, training_curves


def png_through_savefig(figure: Figure) -> bytes:
    """How to_png made its PNG before it read the Agg canvas directly: savefig, decode, quantize, save."""
    rendered = io.BytesIO()
    figure.savefig(rendered, format="png", dpi=DPI)
    rendered.seek(0)
    with Image.open(rendered) as image:
        palette = image.convert("RGB").quantize(colors=256)
    buffer = io.BytesIO()
    palette.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def figures():
    matrix = np.random.default_rng(0).integers(0, 1000, (10, 10))
    yield confusion_matrix_heatmap(matrix, [str(i) for i in range(10)])
    history = {"loss": [0.5, 0.3], "val_loss": [0.4, 0.35], "accuracy": [0.9, 0.95], "val_accuracy": [0.92, 0.94]}
    yield training_curves(history)


@pytest.mark.parametrize("make", [0, 1])
def test_to_png_stores_the_same_bytes_as_through_savefig(make):
    """Reading the canvas's pixels instead of a decoded savefig PNG changes no byte, so digit_plots' versions stay."""
    with style():
        first = list(figures())[make]
        second = list(figures())[make]
        assert to_png(first) == png_through_savefig(second)


def test_to_png_refuses_a_figure_at_another_resolution():
    with style():
        figure = Figure(figsize=(4, 3), dpi=72)
        figure.subplots().plot([0, 1], [0, 1])
        with pytest.raises(ValueError, match=r"expected a figure drawn at 100 dpi \(plots.new_figure\), found 72(\.0)? dpi"):
            to_png(figure)
