"""Jobs users launch. All run in one process: a process per step would pay a TensorFlow import per step."""

from __future__ import annotations

import dagster as dg

full_pipeline_job = dg.define_asset_job(
    name="mnist_full_pipeline",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Materialize every asset: load MNIST, train the tutorial convnet, evaluate, predict, plot.",
)
