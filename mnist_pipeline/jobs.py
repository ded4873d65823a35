"""Jobs users launch. All run in one process: a process per step would pay a TensorFlow import per step."""

import dagster as dg

full_pipeline_job = dg.define_asset_job(
    name="mnist_full_pipeline",
    # Sources included: every full run observes the MNIST files first, so lineage records what it read.
    selection=dg.AssetSelection.all() | dg.AssetSelection.assets("mnist_files"),
    executor_def=dg.in_process_executor,
    description="Observe the MNIST files, then materialize every asset: load, train, evaluate, predict, plot.",
)

observe_sources_job = dg.define_asset_job(
    name="mnist_observe_sources",
    selection=dg.AssetSelection.assets("mnist_files"),
    executor_def=dg.in_process_executor,
    description="Hash the MNIST files (fetching them if absent), so changed files mark their assets unsynced.",
)
