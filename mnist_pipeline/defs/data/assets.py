"""raw_mnist and scaled_mnist: the data as loaded, then as the network reads it."""

import warnings

import dagster as dg

from mnist_pipeline.ml.data import preprocessing
from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.ml.data.sources import MnistUnavailableError
from mnist_pipeline.display import rounded
from mnist_pipeline.ml.content_versions import dataset_version
from mnist_pipeline.defs.data.sources_read import SOURCE_VERSIONS_READ

# A download that failed on the network is tried again, after 5, 10 and 20 s; nothing else is retried.
FETCH_RETRIES = 3
FETCH_RETRY_DELAY_S = 5



def describe(dataset: DigitDataset) -> dict[str, object]:
    """Shapes, dtypes, class names and class counts of each split, for the asset's metadata."""
    metadata: dict[str, object] = {}
    for name, array in dataset.arrays().items():
        metadata[f"{name}_shape"] = str(array.shape)
        metadata[f"{name}_dtype"] = str(array.dtype)
    metadata["num_train"] = dataset.num_train
    metadata["num_test"] = dataset.num_test
    metadata["class_names"] = dg.MetadataValue.json(dataset.names())
    metadata["train_class_counts"] = dg.MetadataValue.json(preprocessing.class_counts(dataset.train_labels, dataset.names()))
    metadata["test_class_counts"] = dg.MetadataValue.json(preprocessing.class_counts(dataset.test_labels, dataset.names()))
    return metadata



MNIST_FILES_DESCRIPTION = (
    "The four IDX files (and classes.txt, when there is one): MNIST_DATA_DIR's when set (its data version "
    "hashes their contents, so new or changed files mark everything downstream unsynced), else MNIST itself, "
    "identified by its published SHA-256 hashes, which every fetched or cached copy is verified against."
)

# The spec form, because `dg.observable_source_asset(fn, group_name=..., description=...)` drops its
# keyword arguments in Dagster 1.13 (the source landed in group "default" with no description), and
# a source asset has no owners at all; an AssetSpec carries every annotation the UI shows.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # multi_observable_source_asset is beta in Dagster 1.13

    @dg.multi_observable_source_asset(
        specs=[
            dg.AssetSpec(
                "mnist_files",
                description=MNIST_FILES_DESCRIPTION,
                kinds={"idx"},
            )
        ],
    )
    def mnist_files(mnist_source: MnistSource) -> dg.ObserveResult:
        return dg.ObserveResult(
            asset_key="mnist_files", data_version=dg.DataVersion(mnist_source.files_version())
        )


@dg.asset(
    io_manager_key="npz_io_manager",
    kinds={"numpy"},
    deps=[mnist_files],
    # No RetryPolicy: it would retry every error (a bad directory, unwritable storage) for about a minute.
    # The body asks for a retry itself, only when a download failed on the network.
)
def raw_mnist(context: dg.AssetExecutionContext, mnist_source: MnistSource) -> dg.Output[DigitDataset]:
    """The four MNIST arrays exactly as loaded: uint8 images (N, 28, 28) and labels 0..9, with the ten class names."""
    # Taken before loading: files replaced during the load then count as changed, never as read.
    files_version = mnist_source.files_version()
    try:
        loaded = mnist_source.load(log=context.log.info)
    except MnistUnavailableError as error:
        if not error.retryable or context.retry_number >= FETCH_RETRIES:
            raise  # the last attempt fails with the cause itself, not Dagster's "Exceeded max_retries"
        delay = FETCH_RETRY_DELAY_S * 2**context.retry_number
        context.log.warning(
            f"A download of MNIST failed, trying again in {delay} s "
            f"(retry {context.retry_number + 1} of {FETCH_RETRIES}): {error}"
        )
        raise dg.RetryRequested(max_retries=FETCH_RETRIES, seconds_to_wait=delay) from error
    metadata = describe(loaded.dataset)
    metadata[SOURCE_VERSIONS_READ] = dg.MetadataValue.json({mnist_files.key.to_user_string(): files_version})
    metadata["source"] = loaded.source
    metadata["source_location"] = loaded.location
    if loaded.sha256:
        metadata["idx_sha256"] = dg.MetadataValue.json(loaded.sha256)
    return dg.Output(loaded.dataset, data_version=dg.DataVersion(dataset_version(loaded.dataset)), metadata=metadata)


@dg.asset(io_manager_key="npz_io_manager", kinds={"numpy"})
def scaled_mnist(context: dg.AssetExecutionContext, raw_mnist: DigitDataset) -> dg.Output[DigitDataset]:
    """Images divided by 255 as float32 in [0, 1]; labels and class names unchanged."""
    scaled = preprocessing.scaled(raw_mnist)
    metadata = describe(scaled)
    metadata["pixel_min"] = rounded(min(scaled.train_images.min(), scaled.test_images.min()))
    metadata["pixel_max"] = rounded(max(scaled.train_images.max(), scaled.test_images.max()))
    return dg.Output(scaled, data_version=dg.DataVersion(dataset_version(scaled)), metadata=metadata)
