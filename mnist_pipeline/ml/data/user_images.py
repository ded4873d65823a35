"""A user's own picture of a digit (a PNG or JPEG: a drawing, a scan, a photo of a digit on paper) as an MNIST image.

MNIST's images were made from scanned digits in a fixed way: light strokes on a
black background, each digit scaled so that its bounding box fits 20x20 pixels
(keeping its aspect ratio, anti-aliased), then placed in a 28x28 image with its
centre of mass at the centre. A model trained on MNIST expects exactly that, so
a user's picture is made the same way:

1. greyscale: a transparent background counts as white paper, a photo's EXIF
   rotation is applied;
2. inverted when the background (the median of the border pixels) is light,
   so that strokes are light on dark as in MNIST;
3. the background level removed and the contrast stretched, so paper that came
   out grey in a photo turns black and faint pencil turns white;
4. cropped to the strokes, scaled into 20x20, centred by mass in 28x28.

Plain numpy and Pillow; no Keras, no Dagster.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MNIST_SIDE = 28  # pixels of an MNIST image
DIGIT_BOX = 20  # pixels the digit's bounding box is scaled to fit, as in MNIST
# Past the background level, the share of the strokes' brightness from which a pixel counts as
# part of the digit when cropping: low enough for faint strokes, above a photo's paper grain.
INK_FRACTION = 0.25
# The least difference between strokes and background, out of 255, for a picture to hold a digit.
MIN_CONTRAST = 40
# The background's brightness: a high percentile of the border, so that most of the paper's grain
# is at or below it and turns black.
BACKGROUND_PERCENTILE = 90
# Photos are reduced to at most this many pixels on their longer side before anything else:
# plenty for a digit that ends up 20 pixels tall, and the cost of a 12-megapixel photo goes.
WORKING_SIDE = 512
IMAGE_KINDS = "a PNG or JPEG image"


class UserImageError(ValueError):
    """A file that cannot be made into an MNIST image: missing, empty, not an image, or holding no digit."""


def read_greyscale(path: Path) -> np.ndarray:
    """The picture at `path` as float32 greyscale, 0 (black) to 255 (white); transparency counts as white."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserImageError(f"{path}: expected {IMAGE_KINDS}, found no file")
    size = path.stat().st_size
    if size == 0:
        raise UserImageError(f"{path}: expected {IMAGE_KINDS}, found an empty file")
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)  # a photo's rotation, as its EXIF data records it
            image.load()
    except UnidentifiedImageError:
        with open(path, "rb") as handle:
            start = handle.read(8)
        raise UserImageError(
            f"{path}: expected {IMAGE_KINDS}, found {size} bytes that are not an image Pillow can read (starting {start!r})"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's ways of saying "truncated" or "damaged"
        raise UserImageError(f"{path}: expected {IMAGE_KINDS}, found a damaged or truncated image ({error})") from error
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    image = image.convert("L")
    if max(image.size) > WORKING_SIDE:
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)  # area averaging keeps thin strokes
    return np.asarray(image, dtype=np.float32)


def to_mnist(grey: np.ndarray, *, where: str = "image") -> np.ndarray:
    """A greyscale picture (any size, 0..255) as a 28x28 uint8 MNIST image; `where` names it in errors."""
    if grey.ndim != 2 or min(grey.shape) < 2:
        raise UserImageError(f"{where}: expected a picture at least 2x2 pixels, found shape {grey.shape}")
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    if np.median(border) > 127:  # dark strokes on light paper: MNIST's strokes are light
        grey = 255.0 - grey
        border = 255.0 - border
    background = float(np.percentile(border, BACKGROUND_PERCENTILE))
    strokes = float(grey.max())
    if strokes - background < MIN_CONTRAST:
        raise UserImageError(
            f"{where}: expected a digit that stands out from its background by at least {MIN_CONTRAST} of 255 grey "
            f"levels, found {max(strokes - background, 0):.0f}: the picture is blank or nearly uniform"
        )
    ink = np.clip((grey - background) / (strokes - background), 0.0, 1.0)
    rows, columns = np.nonzero(ink > INK_FRACTION)
    digit = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    digit = np.where(digit > INK_FRACTION / 2, digit, 0.0).astype(np.float32)  # grain left inside the box goes
    return _centred(_fitted(digit))


def _fitted(digit: np.ndarray) -> np.ndarray:
    """The digit scaled, anti-aliased, so that its longer side is DIGIT_BOX pixels."""
    from PIL import Image

    height, width = digit.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Area averaging when shrinking, bilinear when enlarging: anti-aliased edges as MNIST's have, and no
    # ringing (a Lanczos filter leaves faint copies of each stroke's edge beside it).
    shrinking = scale < 1
    resized = Image.fromarray(digit, mode="F").resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _centred(digit: np.ndarray) -> np.ndarray:
    """`digit` placed in a 28x28 image with its centre of mass at the centre (kept whole inside it)."""
    height, width = digit.shape
    total = float(digit.sum())
    mass_row = float((digit.sum(axis=1) * np.arange(height)).sum()) / total
    mass_column = float((digit.sum(axis=0) * np.arange(width)).sum()) / total
    centre = MNIST_SIDE / 2  # 14.0: MNIST's training digits have their centre of mass there (mean 14.00, 14.01)
    top = int(np.clip(round(centre - mass_row), 0, MNIST_SIDE - height))
    left = int(np.clip(round(centre - mass_column), 0, MNIST_SIDE - width))
    image = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    image[top : top + height, left : left + width] = digit
    return np.round(image * 255).astype(np.uint8)


def load_user_image(path: Path) -> np.ndarray:
    """The picture at `path` as a 28x28 uint8 MNIST image (light strokes on black, centred by mass)."""
    return to_mnist(read_greyscale(path), where=str(path))
