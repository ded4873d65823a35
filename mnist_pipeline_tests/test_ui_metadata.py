"""Materialization metadata as the UI uses it: numbers it can plot run after run, plots and table previews."""

import base64
import re

import dagster as dg
import pytest

from mnist_pipeline.definitions import all_assets
from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir
from mnist_pipeline_tests.test_definitions import FAST_TRAINING, resources

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_EMBEDDED_PNG_BYTES = 100_000  # half of 200 KB: every plot travels in the event log
EMBEDDED_PNG = re.compile(r"^!\[(?P<name>\w+)\]\(data:image/png;base64,(?P<data>[A-Za-z0-9+/=]+)\)$")


@pytest.fixture(scope="module")
def materialized(tmp_path_factory) -> dg.ExecuteInProcessResult:
    root = tmp_path_factory.mktemp("ui_metadata")
    idx_dir = write_idx_dir(make_dataset(), root / "idx")
    result = dg.materialize(all_assets, resources=resources(idx_dir, root / "storage"), run_config=FAST_TRAINING)
    assert result.success
    return result


def metadata(result: dg.ExecuteInProcessResult, asset_key: str) -> dict:
    return result.asset_materializations_for_node(asset_key)[0].metadata


@pytest.mark.parametrize(
    "asset_key, key, value_type",
    [
        ("evaluation_metrics", "test_accuracy", dg.FloatMetadataValue),
        ("evaluation_metrics", "test_loss", dg.FloatMetadataValue),
        ("trained_model", "training_seconds", dg.FloatMetadataValue),
        ("compiled_model", "parameter_count", dg.IntMetadataValue),
    ],
)
def test_model_history_is_numeric_metadata_under_stable_keys(materialized, asset_key, key, value_type):
    """Dagster plots numeric metadata across materializations only when the key and the type stay the same."""
    value = metadata(materialized, asset_key)[key]
    assert type(value) is value_type, f"{asset_key}.{key}: expected {value_type.__name__}, found {type(value).__name__}"
    assert value.value >= 0


def test_parameter_count_is_the_tutorial_networks(materialized):
    # Conv2D 32*(3*3+1) + Dense 13*13*32*128+128 + Dense 128*10+10
    assert metadata(materialized, "compiled_model")["parameter_count"].value == 320 + 692_352 + 1_290


def test_plots_are_embedded_markdown_pngs_well_under_200_kb(materialized):
    plots = {key: value for key, value in metadata(materialized, "digit_plots").items() if key.startswith("plot_")}
    assert len(plots) == 7
    for key, value in plots.items():
        assert isinstance(value, dg.MarkdownMetadataValue), key
        match = EMBEDDED_PNG.match(value.value)
        assert match and f"plot_{match['name']}" == key, key
        png = base64.b64decode(match["data"], validate=True)
        assert png.startswith(PNG_SIGNATURE), key
        assert len(png) < MAX_EMBEDDED_PNG_BYTES, f"{key}: {len(png)} bytes"
    assert metadata(materialized, "digit_plots")["largest_png_bytes"].value < MAX_EMBEDDED_PNG_BYTES


def test_predictions_table_shows_its_columns_and_a_preview(materialized):
    table_metadata = metadata(materialized, "predictions_table")
    columns = [column.name for column in table_metadata["dagster/column_schema"].value.columns]
    assert columns == [
        "index", "true_label", "predicted_label", "confidence", *[f"prob_{d}" for d in range(10)], "correct",
    ]
    assert table_metadata["dagster/row_count"].value == 100
    preview = table_metadata["preview"].value.splitlines()
    assert preview[0].startswith("| index | true_label | predicted_label | confidence |")
    assert len(preview) == 2 + 10
