"""Figures for the digit_plots asset, each rendered to PNG bytes.

Uses matplotlib's object API (no pyplot), so nothing global is touched and no
display is needed.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

DPI = 80


def to_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def sample_digit(image: np.ndarray, label: int) -> bytes:
    figure = Figure(figsize=(3, 3))
    axes = figure.subplots()
    shown = axes.imshow(image, cmap="gray_r", interpolation="nearest")
    figure.colorbar(shown, ax=axes)
    axes.set_title(f"label {label}")
    axes.set_xticks([])
    axes.set_yticks([])
    return to_png(figure)


def digit_grid(
    images: np.ndarray,
    true_labels: Sequence[int],
    predicted_labels: Sequence[int],
    title: str,
    captions: Sequence[str] | None = None,
    columns: int = 8,
) -> bytes:
    """Digits with 'predicted (true)' captions; mistakes in red."""
    count = len(images)
    rows = max(1, -(-count // columns))
    figure = Figure(figsize=(columns * 1.1, rows * 1.3 + 0.4))
    figure.suptitle(title)
    axes_grid = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for position, axes in enumerate(axes_grid):
        axes.set_axis_off()
        if position >= count:
            continue
        # The digits' own pixels, not smoothed ones: truer, and the PNG is less than half the size.
        axes.imshow(images[position], cmap="gray_r", interpolation="nearest")
        right = true_labels[position] == predicted_labels[position]
        caption = captions[position] if captions else f"{predicted_labels[position]} ({true_labels[position]})"
        axes.set_title(caption, fontsize=8, color="black" if right else "red")
    return to_png(figure)


def class_probabilities(probabilities: Sequence[float], true_label: int, index: int) -> bytes:
    figure = Figure(figsize=(4, 2.5))
    axes = figure.subplots()
    digits = np.arange(len(probabilities))
    colors = ["tab:green" if digit == true_label else "tab:blue" for digit in digits]
    axes.bar(digits, probabilities, color=colors)
    axes.set_xticks(digits)
    axes.set_ylim(0, 1)
    axes.set_xlabel("class")
    axes.set_ylabel("probability")
    axes.set_title(f"test image {index} (true label {true_label}, in green)")
    return to_png(figure)


def confusion_matrix_heatmap(matrix: np.ndarray) -> bytes:
    figure = Figure(figsize=(5, 4.5))
    axes = figure.subplots()
    # Log scale so the few mistakes show beside the large diagonal.
    shown = axes.imshow(np.log1p(matrix), cmap="Blues")
    figure.colorbar(shown, ax=axes, label="log(1 + count)")
    size = len(matrix)
    for i in range(size):
        for j in range(size):
            if matrix[i, j]:
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                          color="white" if i == j else "black")
    axes.set_xticks(range(size))
    axes.set_yticks(range(size))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("confusion matrix (test set)")
    return to_png(figure)


def training_curves(history: dict[str, list[float]]) -> bytes:
    figure = Figure(figsize=(8, 3))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + metric)
            if values:
                axes.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.legend()
        axes.grid(alpha=0.3)
    return to_png(figure)
