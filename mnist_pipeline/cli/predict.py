"""`mnist-pipeline predict IMAGE...`: classify a user's own pictures with the served model (or a named version).

Every picture is read and made into an MNIST image first (ml/data/user_images.py),
so a file that is missing, empty, not an image or blank is reported, naming it,
before any model is loaded; then all of them are classified in one batch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

TOP_CLASSES = 3


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "predict",
        help="classify your own pictures of digits (PNG or JPEG, any size) with the served model",
        description="Each picture is made into an MNIST image (greyscale, inverted when the background is light, "
        "cropped, scaled into 20x20 and centred by mass in 28x28), then classified: the class, its probability "
        f"and the top {TOP_CLASSES}.",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--version", help="a registered model version instead of the served one (`models list`)")
    parser.add_argument("--json", action="store_true", help="print the predictions as JSON instead of lines")
    parser.add_argument(
        "--save-inputs", type=Path, metavar="DIR",
        help="also write each picture as the model saw it (28x28 PNG), to check the preprocessing",
    )


def top_classes(probabilities: Sequence[float], class_names: Sequence[str], k: int = TOP_CLASSES) -> list[dict[str, Any]]:
    """The k most probable classes, most probable first: index, name and probability of each."""
    ranked = sorted(range(len(probabilities)), key=lambda index: -probabilities[index])[:k]
    return [{"class": index, "name": class_names[index], "probability": float(probabilities[index])} for index in ranked]


def predict(args: argparse.Namespace, registry: Any, served_version: str | None) -> int:
    import numpy as np

    from mnist_pipeline.ml.data.dataset import DIGIT_CLASS_NAMES
    from mnist_pipeline.ml.data.preprocessing import scale_images
    from mnist_pipeline.ml.data.user_images import UserImageError, load_user_image
    from mnist_pipeline.ml.evaluation.evaluate import predict_probabilities

    try:
        images = np.stack([load_user_image(path) for path in args.images])
    except UserImageError as error:
        print(str(error), file=sys.stderr)
        return 1
    version = args.version or served_version
    if version is None:
        print(
            "No model is served yet: run `mnist-pipeline run` (a run whose gates all pass serves its model), "
            "or name a registered version with --version (`mnist-pipeline models list`).",
            file=sys.stderr,
        )
        return 1
    if args.save_inputs:
        _save_inputs(args.save_inputs, args.images, images)
    class_names = registry.manifest(version).get("class_names") or list(DIGIT_CLASS_NAMES)
    probabilities = predict_probabilities(registry.load(version), scale_images(images))
    results = [
        {"image": str(path), "model_version": version, "top": top_classes(row.tolist(), class_names)}
        for path, row in zip(args.images, probabilities)
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"Model {version}{' (served)' if version == served_version else ''}:")
    for result in results:
        best, *others = result["top"]
        rest = ", ".join(f"{other['name']} {other['probability']:.1%}" for other in others)
        print(f"{result['image']}: {best['name']} ({best['probability']:.1%}); then {rest}")
    return 0


def _save_inputs(directory: Path, paths: Sequence[Path], images: Any) -> None:
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for path, image in zip(paths, images):
        Image.fromarray(image).save(directory / f"{path.stem}.mnist.png")
