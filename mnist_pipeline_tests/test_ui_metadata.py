"""Materialization metadata as the UI uses it: numbers it can plot run after run, plots and table previews.

The data set here is not digits: its directory has a classes.txt with Fashion-MNIST's class names, which
the table, the plots, the checks and the metadata must show.
"""

import base64
import re
import struct

import dagster as dg
import pytest

from mnist_pipeline.definitions import all_assets
from mnist_pipeline.ml.reports import plots
from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir
from mnist_pipeline_tests.pipeline_support import FAST_TRAINING, resources

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_EMBEDDED_PNG_BYTES = 100_000  # half of 200 KB: every plot travels in the event log
EMBEDDED_PNG = re.compile(r"^!\[(?P<name>\w+)\]\(data:image/png;base64,(?P<data>[A-Za-z0-9+/=]+)\)$")


pytestmark = pytest.mark.slow  # one module fixture runs the pipeline; the fast tier leaves this module out


@pytest.fixture(scope="module")
def materialized(tmp_path_factory) -> dg.ExecuteInProcessResult:
    root = tmp_path_factory.mktemp("ui_metadata")
    idx_dir = write_idx_dir(make_dataset(), root / "idx")
    (idx_dir / "classes.txt").write_text("\n".join(FASHION) + "\n")
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


def embedded_pngs(result) -> dict[str, bytes]:
    pngs = {}
    for key, value in metadata(result, "digit_plots").items():
        if key.startswith("plot_"):
            assert isinstance(value, dg.MarkdownMetadataValue), key
            match = EMBEDDED_PNG.match(value.value)
            assert match and f"plot_{match['name']}" == key, key
            pngs[key] = base64.b64decode(match["data"], validate=True)
    return pngs


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    assert png.startswith(PNG_SIGNATURE)
    return struct.unpack(">II", png[16:24])


def test_plots_are_embedded_markdown_pngs_well_under_200_kb(materialized):
    pngs = embedded_pngs(materialized)
    assert len(pngs) == 8
    for key, png in pngs.items():
        assert len(png) < MAX_EMBEDDED_PNG_BYTES, f"{key}: {len(png)} bytes"
    assert metadata(materialized, "digit_plots")["largest_png_bytes"].value < MAX_EMBEDDED_PNG_BYTES


def test_plots_are_drawn_at_the_size_the_ui_shows_them(materialized):
    """The UI shows an embedded PNG at its own pixel size in a dialog about 1,240 px wide: large enough to
    read (the old ones were 212-561 px wide, with 5 px numbers), never wider than the dialog."""
    sizes = {key: png_size(png) for key, png in embedded_pngs(materialized).items()}
    assert list(sizes)[0] == "plot_overview", "the overview comes first in the metadata"
    assert sizes["plot_overview"] == (plots.MAX_WIDTH_PX, 780)
    assert sizes["plot_confusion_matrix"] == (820, 720)
    assert sizes["plot_training_curves"] == (1100, 420)
    for key, (width, height) in sizes.items():
        assert 400 <= width <= 1200 and 350 <= height <= 800, f"{key}: {width}x{height}"


def test_no_text_in_any_plot_is_smaller_than_14_px():
    """Every title, caption, tick label, legend and count, measured on the drawn figures."""
    import matplotlib.text
    import numpy as np

    from mnist_pipeline.ml.evaluation.metrics import confusion_matrix
    from mnist_pipeline.ml.evaluation.predictions import build_predictions_table
    from mnist_pipeline.ml.reports.report import render_figures

    dataset = make_dataset(num_test=200)
    probabilities = np.full((dataset.num_test, 10), 0.01, dtype=np.float32)
    probabilities[np.arange(dataset.num_test), (dataset.test_labels + (np.arange(dataset.num_test) % 7 == 0)) % 10] = 0.91
    table = build_predictions_table(probabilities, dataset.test_labels)
    metrics = {"test_accuracy": float(table["correct"].mean()), "test_loss": 0.5,
               "confusion_matrix": confusion_matrix(dataset.test_labels, probabilities.argmax(axis=1)).tolist()}
    history = {"loss": [0.9, 0.5], "val_loss": [0.8, 0.6], "accuracy": [0.7, 0.9], "val_accuracy": [0.75, 0.85]}
    with plots.style():
        figures = render_figures(dataset, history, metrics, table)
        assert "overview" in figures
        for name, figure in figures.items():
            figure.draw_without_rendering()  # lays out the ticks and their labels
            texts = [t for t in figure.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
            assert texts, name
            smallest = min(text.get_fontsize() * plots.DPI / 72 for text in texts)
            assert smallest >= 13.8, f"{name}: text {smallest:.1f} px high"
    counts = [t.get_text() for t in figures["confusion_matrix"].findobj(matplotlib.text.Text)]
    assert "17" in counts and "3" in counts  # the counts are drawn as text


def test_predictions_table_shows_its_columns_and_a_preview(materialized):
    table_metadata = metadata(materialized, "predictions_table")
    columns = [column.name for column in table_metadata["dagster/column_schema"].value.columns]
    assert columns == [
        "index", "true_label", "predicted_label", "true_class", "predicted_class", "confidence",
        *[f"prob_{d}" for d in range(10)], "correct",
    ]
    assert table_metadata["dagster/row_count"].value == 100
    preview = table_metadata["preview"].value.splitlines()
    assert preview[0].startswith("| index | true_label | predicted_label | true_class | predicted_class | confidence |")
    assert len(preview) == 2 + 10
    assert preview[2].startswith("| 0 | 0 | ") and "| T-shirt/top |" in preview[2]


def test_every_table_column_has_a_description(materialized):
    columns = metadata(materialized, "predictions_table")["dagster/column_schema"].value.columns
    descriptions = {column.name: column.description for column in columns}
    assert all(descriptions.values()), descriptions
    assert descriptions["prob_9"] == "probability of class 9 (Ankle boot)"
    assert descriptions["confidence"].startswith("the highest of the ten probabilities")


FLOAT_CELL = re.compile(r"^-?\d+\.\d+(e-?\d+)?$")


def test_metadata_floats_are_rounded_to_four_significant_digits(materialized):
    """Keras's float32 results shown as float64 read 0.9751999974250793 or 0.00019999999494757503."""
    from mnist_pipeline.display import rounded

    checked = 0
    for event in materialized.get_asset_materialization_events():
        key = event.asset_key.to_user_string()
        for name, value in event.materialization.metadata.items():
            if isinstance(value, dg.FloatMetadataValue):
                assert value.value == float(f"{value.value:.4g}"), f"{key}.{name} = {value.value!r}"
                checked += 1
    assert checked >= 10
    trained = metadata(materialized, "trained_model")
    for values in trained["history"].value.values():
        assert all(v == float(f"{v:.4g}") for v in values), values
    evaluation = materialized.asset_value("evaluation_metrics")
    assert metadata(materialized, "evaluation_metrics")["test_accuracy"].value == rounded(evaluation["test_accuracy"])
    assert metadata(materialized, "evaluation_metrics")["test_loss"].value == rounded(evaluation["test_loss"])
    cells = [cell.strip() for line in metadata(materialized, "predictions_table")["preview"].value.splitlines()[2:]
             for cell in line.strip("|").split("|")]
    floats = [cell for cell in cells if FLOAT_CELL.match(cell)]
    assert len(floats) >= 10 * 11  # confidence and the ten probabilities of each row
    assert all(float(cell) == float(f"{float(cell):.4g}") and len(cell) <= 10 for cell in floats), floats


def test_class_names_reach_the_metadata_and_the_table(materialized):
    assert metadata(materialized, "raw_mnist")["class_names"].value == FASHION
    assert metadata(materialized, "scaled_mnist")["class_names"].value == FASHION
    assert list(metadata(materialized, "raw_mnist")["test_class_counts"].value) == FASHION
    per_class = metadata(materialized, "evaluation_metrics")["per_class"].value
    assert per_class.splitlines()[0] == "| class | precision | recall | support |"
    assert per_class.splitlines()[-1].startswith("| Ankle boot |")
    assert "| true \\ predicted | T-shirt/top | Trouser |" in metadata(materialized, "evaluation_metrics")["confusion_matrix"].value
    table = materialized.asset_value("predictions_table")
    assert list(table["true_class"].cat.categories) == FASHION
    assert (table["true_class"].astype(str) == [FASHION[label] for label in table["true_label"]]).all()
