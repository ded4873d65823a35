"""Blocking quality checks on the data: a failure stops everything downstream of it."""

from typing import Callable, Iterator

import dagster as dg

from mnist_pipeline.ml.data import quality
from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.defs.data.resources import MnistSource

Rule = Callable[[DigitDataset], quality.Outcome]


def evaluate(asset: str, rules: dict[str, Rule], dataset: DigitDataset) -> Iterator[dg.AssetCheckResult]:
    for name, rule in rules.items():
        passed, found = rule(dataset)
        yield dg.AssetCheckResult(
            asset_key=asset, check_name=name, passed=passed, description=found,
            severity=dg.AssetCheckSeverity.ERROR,
        )


def specs(asset: str, rules: dict[str, str]) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset=asset, blocking=True, description=text) for name, text in rules.items()]


RAW_CHECKS = {
    "counts": "MNIST's 60,000 train and 10,000 test images (any positive counts for a data directory of your own)",
    "image_shapes": "every image is 28x28",
    "labels_in_range": "every label is a class index in 0..9",
    "every_class_present": "all ten classes appear in both splits (named by classes.txt when the data directory has one)",
}


@dg.multi_asset_check(specs=specs("raw_mnist", RAW_CHECKS), ins={"raw_mnist": dg.AssetIn("raw_mnist")})
def raw_mnist_checks(raw_mnist: DigitDataset, mnist_source: MnistSource) -> Iterator[dg.AssetCheckResult]:
    expected = quality.MNIST_COUNTS if mnist_source.resolved_data_dir() is None else None
    yield from evaluate(
        "raw_mnist",
        {
            "counts": lambda dataset: quality.counts(dataset, expected),
            "image_shapes": quality.shapes,
            "labels_in_range": quality.labels_in_range,
            "every_class_present": quality.every_class_present,
        },
        raw_mnist,
    )


SCALED_CHECKS = {
    "pixel_range": "pixels are float32 in [0, 1]",
    "no_nan": "no pixel is NaN",
}


@dg.multi_asset_check(specs=specs("scaled_mnist", SCALED_CHECKS), ins={"scaled_mnist": dg.AssetIn("scaled_mnist")})
def scaled_mnist_checks(scaled_mnist: DigitDataset) -> Iterator[dg.AssetCheckResult]:
    yield from evaluate("scaled_mnist", {"pixel_range": quality.scaled_range, "no_nan": quality.no_nan}, scaled_mnist)
