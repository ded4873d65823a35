"""Figures for the digit_plots asset, sized for the place the UI shows them.

The UI opens each embedded PNG in a dialog at its own pixel size (1 image
pixel = 1 CSS pixel, never scaled up, cut off beyond about 1,240 px). So each
figure is drawn at DPI 100 to a known size in pixels, no wider than
MAX_WIDTH_PX, and no text is smaller than MIN_TEXT_PT (10 pt = 14 px, the UI's
own body text size).

Uses matplotlib's object API (no pyplot): no display is needed, and the only
global touched is matplotlib's rcParams, set for the duration of `style()`.
"""

from __future__ import annotations

import contextlib
import io
from typing import Iterator, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

DPI = 100
MAX_WIDTH_PX = 1200  # the UI's dialog shows at most about 1,240 px of an image
MIN_TEXT_PT = 10  # 10 pt at 100 DPI is 14 px high
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": MIN_TEXT_PT,
    "ytick.labelsize": MIN_TEXT_PT,
    "legend.fontsize": MIN_TEXT_PT,
    "figure.titlesize": 14,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}
RIGHT, WRONG, TRUE_CLASS = "black", "tab:red", "tab:green"

Canvas = Figure | SubFigure


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Text sizes and resolution of every figure; draw and save inside it (ticks are laid out at draw time)."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width_px: int, height_px: int) -> Figure:
    return Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")


def to_png(figure: Figure) -> bytes:
    """The figure at exactly its size in pixels (no tight bounding box, which would change it).

    Stored with a 256-colour palette: a third of the size of matplotlib's RGBA
    PNG, with no visible difference for these flat-coloured figures, so every
    plot stays well under 100 KB in the event log.
    """
    from PIL import Image  # Pillow, declared in pyproject.toml (matplotlib needs it too)

    rendered = io.BytesIO()
    figure.savefig(rendered, format="png", dpi=DPI)
    rendered.seek(0)
    with Image.open(rendered) as image:
        palette = image.convert("RGB").quantize(colors=256)
    buffer = io.BytesIO()
    palette.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def _long(names: Sequence[str]) -> bool:
    """Whether tick labels of these class names need turning to fit side by side."""
    return max(len(name) for name in names) > 3


# --- drawing into given axes, shared by the single figures and the overview ---


def prediction_caption(predicted: str, true: str, confidence: float | None = None) -> str:
    """The predicted class; the true one below it when they differ; the confidence last."""
    lines = [predicted] if predicted == true else [predicted, f"true: {true}"]
    if confidence is not None:
        lines.append(f"{confidence:.2f}")
    return "\n".join(lines)


def draw_confusion_matrix(axes: Axes, matrix: np.ndarray, names: Sequence[str], fontsize: float = MIN_TEXT_PT):
    # Log scale so the few mistakes show beside the large diagonal.
    shown = axes.imshow(np.log1p(matrix), cmap="Blues")
    brightest = np.log1p(matrix).max() or 1.0
    size = len(matrix)
    for i in range(size):
        for j in range(size):
            if matrix[i, j]:
                dark = np.log1p(matrix[i, j]) > 0.6 * brightest
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=fontsize,
                          color="white" if dark else "black")
    axes.set_xticks(range(size), names, rotation=45 if _long(names) else 0, ha="right" if _long(names) else "center",
                    rotation_mode="anchor")
    axes.set_yticks(range(size), names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    return shown


def draw_curves(loss_axes: Axes, accuracy_axes: Axes, history: dict[str, list[float]]) -> None:
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + metric)
            if values:
                axes.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.set_title(metric)
        axes.legend()
        axes.grid(alpha=0.3)


def _digit_rows(canvas: Canvas, images, captions, rights, columns: int, title: str | None) -> None:
    """The images in rows of `columns`, each captioned above it (in red where `rights` is False).

    One axes per row, showing the row's images side by side as one picture, rather than one axes per
    image: drawing and laying out 32 axes took most of a report's time (1.6 s of the prediction grid
    alone). The captions are annotations above the row, so the layout leaves them room.
    """
    rows = max(1, -(-len(images) // columns))
    axes_column = np.atleast_1d(canvas.subplots(rows, 1))
    if title:
        canvas.suptitle(title)
    if len(images) == 0:
        for axes in axes_column:
            axes.set_axis_off()
        return
    height, width = images.shape[1:3]
    gap = max(2, width // 5)
    pitch = width + gap
    blank = np.zeros((height, columns * pitch - gap), dtype=np.float32)  # 0 is white in gray_r
    top = float(np.max(images)) or 1.0  # one scale for every image: MNIST's 0-255, or 0-1 once scaled
    for row, axes in enumerate(axes_column):
        strip = blank.copy()
        for column in range(columns):
            position = row * columns + column
            if position >= len(images):
                break
            strip[:, column * pitch : column * pitch + width] = images[position]
            axes.annotate(
                captions[position], xy=(column * pitch + (width - 1) / 2, -0.5), xytext=(0, 3),
                textcoords="offset points", ha="center", va="bottom", fontsize=MIN_TEXT_PT,
                color=RIGHT if rights[position] else WRONG, linespacing=1.1, annotation_clip=False,
            )
        # The image's own pixels, not smoothed ones: truer, and the PNG is less than half the size.
        axes.imshow(strip, cmap="gray_r", interpolation="nearest", vmin=0, vmax=top)
        axes.set_axis_off()


# --- the figures ---


def sample_digit(image: np.ndarray, name: str) -> Figure:
    figure = new_figure(420, 380)
    axes = figure.subplots()
    shown = axes.imshow(image, cmap="gray_r", interpolation="nearest")
    figure.colorbar(shown, ax=axes, label="pixel value")
    axes.set_title(f"first training image: {name}")
    axes.set_xticks([])
    axes.set_yticks([])
    return figure


def digit_grid(
    images: np.ndarray,
    true_names: Sequence[str],
    predicted_names: Sequence[str],
    title: str,
    confidences: Sequence[float] | None = None,
    columns: int = 8,
) -> Figure:
    """Images captioned with the predicted class (and the true one, in red, when it differs)."""
    count = len(images)
    rows = max(1, -(-count // columns))
    lines = 2 + (confidences is not None)
    figure = new_figure(MAX_WIDTH_PX - 40, int(rows * (115 + 20 * lines)) + 50)
    captions = [
        prediction_caption(p, t, None if confidences is None else confidences[i])
        for i, (p, t) in enumerate(zip(predicted_names, true_names))
    ]
    rights = [p == t for p, t in zip(predicted_names, true_names)]
    if count == 0:
        figure.suptitle(f"{title}: none")
        return figure
    _digit_rows(figure, images, captions, rights, columns, title)
    return figure


def class_probabilities(probabilities: Sequence[float], true_label: int, index: int, names: Sequence[str]) -> Figure:
    figure = new_figure(800, 420)
    axes = figure.subplots()
    classes = np.arange(len(probabilities))
    colors = [TRUE_CLASS if label == true_label else "tab:blue" for label in classes]
    axes.bar(classes, probabilities, color=colors)
    axes.set_xticks(classes, names, rotation=30 if _long(names) else 0, ha="right" if _long(names) else "center",
                    rotation_mode="anchor")
    axes.set_ylim(0, 1)
    axes.set_xlabel("class")
    axes.set_ylabel("probability")
    axes.set_title(f"test image {index}: probability of each class (true class {names[true_label]}, in green)")
    return figure


def confusion_matrix_heatmap(matrix: np.ndarray, names: Sequence[str]) -> Figure:
    figure = new_figure(820, 720)
    axes = figure.subplots()
    shown = draw_confusion_matrix(axes, matrix, names)
    figure.colorbar(shown, ax=axes, label="log(1 + count)")
    axes.set_title("confusion matrix (test set): images of each true class by predicted class")
    return figure


def training_curves(history: dict[str, list[float]]) -> Figure:
    figure = new_figure(1100, 420)
    draw_curves(*figure.subplots(1, 2), history)
    return figure


def overview(
    headline: str,
    images: np.ndarray,
    true_names: Sequence[str],
    predicted_names: Sequence[str],
    confidences: Sequence[float],
    matrix: np.ndarray,
    names: Sequence[str],
    history: dict[str, list[float]],
) -> Figure:
    """The report at a glance: the headline numbers, a few predictions, the confusion matrix, the curves."""
    figure = new_figure(MAX_WIDTH_PX, 780)
    figure.suptitle(headline, fontsize=15, fontweight="bold")
    left, right = figure.subfigures(1, 2, width_ratios=[1.2, 1])
    predictions, curves = left.subfigures(2, 1, height_ratios=[1.15, 1])
    captions = [prediction_caption(p, t, c) for p, t, c in zip(predicted_names, true_names, confidences)]
    rights = [p == t for p, t in zip(predicted_names, true_names)]
    _digit_rows(predictions, images, captions, rights, columns=5,
                title="predictions: class, the true class if wrong (red), confidence")
    draw_curves(*curves.subplots(1, 2), history)
    axes = right.subplots()
    draw_confusion_matrix(axes, matrix, names)
    axes.set_title("confusion matrix (test set)")
    return figure



def disagreements(
    images: np.ndarray,
    true_names: Sequence[str],
    names_a: Sequence[str],
    names_b: Sequence[str],
    labels: tuple[str, str],
    total: int,
    columns: int = 8,
) -> Figure:
    """Test images two models classify differently, each captioned with both answers and the truth:
    in the usual colour when model A is right, in red when it is not. `total` is how many there are in all."""
    label_a, label_b = labels
    count = len(images)
    figure = new_figure(MAX_WIDTH_PX - 40, int(max(1, -(-count // columns)) * 175) + 60)
    if count == 0:
        figure.suptitle(f"A = {label_a}, B = {label_b}: they classify every test image alike")
        return figure
    shown = f", the first {count} shown" if count < total else ""
    title = f"A = {label_a}, B = {label_b}: {total} test images classified differently{shown}"
    captions = [f"A: {a}\nB: {b}\ntrue: {t}" for a, b, t in zip(names_a, names_b, true_names)]
    rights = [a == t for a, t in zip(names_a, true_names)]
    _digit_rows(figure, images, captions, rights, columns, title)
    return figure


def leaderboard_scatter(
    keys: Sequence[str],
    training_seconds: Sequence[float],
    validation_accuracy: Sequence[float],
    model_versions: Sequence[str],
    production_version: str | None,
) -> Figure:
    """Each sweep candidate's validation accuracy against its training time; the production model ringed.

    Validation accuracy, like the leaderboard's ranking (ml/evaluation/leaderboard.py).
    """
    if not (len(keys) == len(training_seconds) == len(validation_accuracy) == len(model_versions)):
        raise ValueError(
            "expected one key, training time, accuracy and model version per candidate, found "
            f"{len(keys)}, {len(training_seconds)}, {len(validation_accuracy)} and {len(model_versions)}"
        )
    figure = new_figure(900, 520)
    axes = figure.subplots()
    axes.scatter(training_seconds, validation_accuracy, color="tab:blue", zorder=2)
    for key, x, y in zip(keys, training_seconds, validation_accuracy):
        axes.annotate(key, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=MIN_TEXT_PT)
    production = [i for i, version in enumerate(model_versions) if production_version and version == production_version]
    if production:
        axes.scatter(
            [training_seconds[i] for i in production],
            [validation_accuracy[i] for i in production],
            s=220, facecolors="none", edgecolors="tab:red", linewidths=2, zorder=3, label="production model",
        )
        axes.legend(loc="lower right")
    axes.set_xlabel("training seconds")
    axes.set_ylabel("validation accuracy")
    axes.set_title("sweep candidates: validation accuracy against training time")
    axes.grid(alpha=0.3)
    return figure
