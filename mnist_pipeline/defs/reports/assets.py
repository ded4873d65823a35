"""digit_plots: the PNG figures a user looks at in the UI."""


import base64

import dagster as dg

from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.ml.content_versions import files_version



def embedded_png(name: str, content: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{name}](data:image/png;base64,{base64.b64encode(content).decode()})")


@dg.asset(io_manager_key="png_io_manager", kinds={"matplotlib", "png"})
def digit_plots(
    context: dg.AssetExecutionContext,
    raw_mnist: DigitDataset,
    trained_model: TrainedModel,
    evaluation_metrics: dict,
    predictions_table,  # a pandas DataFrame, unannotated so that loading the code location does not import pandas
) -> dg.Output[dict]:
    """The report as PNGs: an overview (accuracy, a few predictions, confusion matrix, training curves; open
    plot_overview for the whole result at a glance), then each part on its own: a sample image, the first test
    images with their predicted classes, the most confident mistakes, class probabilities, confusion matrix,
    training curves. Classes are named as the data names them (classes.txt beside the IDX files)."""
    from mnist_pipeline.ml.reports.report import render_plots  # matplotlib: kept out of start-up

    # The images as loaded (uint8): a quarter of the memory of scaled_mnist, and the same pictures.
    figures = render_plots(raw_mnist, trained_model.history, evaluation_metrics, predictions_table)
    metadata: dict[str, object] = {f"plot_{name}": embedded_png(name, png) for name, png in figures.items()}
    metadata["largest_png_bytes"] = max(len(png) for png in figures.values())
    return dg.Output(figures, data_version=dg.DataVersion(files_version(figures)), metadata=metadata)
