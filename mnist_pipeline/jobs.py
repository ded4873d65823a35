"""Jobs users pick in the Launchpad.

  mnist_full_pipeline          every asset: load MNIST, compile, train, evaluate, predict, plot
  mnist_train_evaluate_report  retrain from the stored data and compiled model, then evaluate, predict, plot
  mnist_predictions_and_plots  rebuild the predictions table and the plots from the stored model and metrics

The Launchpad opens each with the hyperparameter defaults of the assets it
runs (model/config.py). All run in one process: a process per step would pay a
TensorFlow import per step.
"""

from __future__ import annotations

import dagster as dg

full_pipeline_job = dg.define_asset_job(
    name="mnist_full_pipeline",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Materialize every asset: load MNIST, train the tutorial convnet, evaluate, predict, plot.",
)

train_evaluate_report_job = dg.define_asset_job(
    name="mnist_train_evaluate_report",
    selection=dg.AssetSelection.assets("trained_model").downstream(),
    executor_def=dg.in_process_executor,
    description=(
        "Retrain the stored compiled model on the stored data, then evaluate, predict and plot again. "
        "For other training settings; a new optimizer or learning rate needs mnist_full_pipeline."
    ),
)

predictions_and_plots_job = dg.define_asset_job(
    name="mnist_predictions_and_plots",
    selection=dg.AssetSelection.assets("predictions_table", "digit_plots"),
    executor_def=dg.in_process_executor,
    description="Rebuild the predictions table and the plots from the stored model, data and metrics; no training.",
)

JOBS = [full_pipeline_job, train_evaluate_report_job, predictions_and_plots_job]
