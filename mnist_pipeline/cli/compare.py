"""`mnist-pipeline models compare A B`: two registered model versions on the same test images.

Per-class accuracy of each, the test images on which they disagree (a figure),
and whether the difference is statistically significant (McNemar's exact test
on the paired predictions, ml/evaluation/comparison.py). The test images are
those the pipeline reads (MNIST_DATA_DIR, else the verified cache).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FIGURE_IMAGES = 32  # disagreements drawn; the count of all of them is in the title


def add_parser(models: Any) -> argparse.ArgumentParser:
    parser = models.add_parser(
        "compare",
        help="two versions on the test set: per-class accuracy, their disagreements (a figure), McNemar's test",
    )
    parser.add_argument("version_a", metavar="A")
    parser.add_argument("version_b", metavar="B")
    parser.add_argument(
        "--figure", type=Path, help="where to write the figure of disagreements (default: compare-A-B.png here)"
    )
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    return parser


def compare(args: argparse.Namespace, registry: Any, dataset: Any) -> int:
    from mnist_pipeline.ml.data.preprocessing import scale_images
    from mnist_pipeline.ml.evaluation.comparison import SIGNIFICANCE_LEVEL, compare_predictions
    from mnist_pipeline.ml.evaluation.evaluate import predict_probabilities

    a, b = args.version_a, args.version_b
    images = scale_images(dataset.test_images)
    predicted = [predict_probabilities(registry.load(version), images).argmax(axis=1) for version in (a, b)]
    names = dataset.names()
    result = compare_predictions(dataset.test_labels, predicted[0], predicted[1], len(names))
    figure_path = (args.figure or Path(f"compare-{a}-{b}.png")).absolute()
    try:
        _write_figure(figure_path, dataset, predicted, result.disagreements, names, (a, b))
    except OSError as error:
        print(f"{figure_path}: could not write the figure of disagreements ({error.strerror or error})", file=sys.stderr)
        return 1
    test = result.mcnemar
    summary = {
        "version_a": a,
        "version_b": b,
        "test_images": int(len(dataset.test_labels)),
        "test_accuracy": {a: result.accuracy_a, b: result.accuracy_b},
        "per_class_accuracy": {
            name: {a: _number(result.per_class_a[index]), b: _number(result.per_class_b[index])}
            for index, name in enumerate(names)
        },
        "disagreements": int(len(result.disagreements)),
        "only_a_right": test.only_a_right,
        "only_b_right": test.only_b_right,
        "mcnemar_p_value": test.p_value,
        "significant": test.significant,
        "figure": str(figure_path),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{'':<16} {'A ' + a:>20} {'B ' + b:>20}")
    print(f"{'test accuracy':<16} {result.accuracy_a:>20.2%} {result.accuracy_b:>20.2%}")
    for index, name in enumerate(names):
        print(f"{'class ' + name:<16} {result.per_class_a[index]:>20.2%} {result.per_class_b[index]:>20.2%}")
    print(
        f"They classify {len(result.disagreements)} of {len(dataset.test_labels)} test images differently: "
        f"only A is right on {test.only_a_right}, only B on {test.only_b_right}."
    )
    if test.significant:
        better = "A" if test.only_a_right > test.only_b_right else "B"
        verdict = f"significant at the {SIGNIFICANCE_LEVEL:.0%} level: {better} is the better model on this test set"
    else:
        verdict = f"not significant at the {SIGNIFICANCE_LEVEL:.0%} level: the test set cannot tell them apart"
    p_value = f"p = {test.p_value:.4g}" if test.p_value > 0 else "p < 1e-300"  # below the smallest float
    print(f"McNemar's exact test: {p_value}, {verdict}.")
    print(f"Figure of the disagreements: {figure_path}")
    return 0


def _number(value: float) -> float | None:
    return None if value != value else float(value)  # NaN (a class with no test image) as null


def _write_figure(path: Path, dataset: Any, predicted: list, disagreements: Any, names: list[str], versions: tuple[str, str]) -> None:
    from mnist_pipeline.ml.reports import plots
    from mnist_pipeline.storage.atomic import atomic_write

    shown = disagreements[:FIGURE_IMAGES]
    with plots.style():
        figure = plots.disagreements(
            dataset.test_images[shown],
            [names[label] for label in dataset.test_labels[shown]],
            [names[label] for label in predicted[0][shown]],
            [names[label] for label in predicted[1][shown]],
            versions,
            total=len(disagreements),
        )
        png = plots.to_png(figure)
    atomic_write(path, lambda tmp: tmp.write_bytes(png))
