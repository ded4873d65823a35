"""Jobs users pick in the Launchpad.

  mnist_full_pipeline          every asset: observe the files, load MNIST, compile, train, evaluate, predict, plot
  mnist_train_evaluate_report  set hyperparameters, rebuild and retrain the model on the stored data, evaluate, predict, plot
  mnist_predictions_and_plots  rebuild the predictions table and the plots from the stored model and metrics
  mnist_observe_sources        hash the MNIST files, so changed files mark their assets unsynced
  mnist_promote_model          serve a registered model version (config: version, reason), e.g. a rollback

"Only what changed" is Dagster's own "Materialize unsynced" in the asset
graph, or `mnist-pipeline update` (defs/automation/what_changed.py).

The Launchpad opens each with the hyperparameter defaults (model/config.py).
Their steps run where MNIST_PIPELINE_ENV says (defs/executor.py, set for every
job in definitions.py): in the run's process, or on the cluster's Celery workers.
The run queue lets one run that trains through at a time, by trained_model's
concurrency pool (TRAINING_POOL, defs/executor.py), not by anything a job sets.
"""

import dagster as dg

full_pipeline_job = dg.define_asset_job(
    name="mnist_full_pipeline",
    # Sources included: every full run observes the MNIST files first, so lineage records what it read.
    # Not the experiments (sweep candidates, one partition per run, and their leaderboard): `mnist-pipeline sweep`.
    selection=(dg.AssetSelection.all() - dg.AssetSelection.groups("experiments")) | dg.AssetSelection.assets("mnist_files"),
    description="Observe the MNIST files, then materialize every asset: load, train, evaluate, predict, plot.",
)

observe_sources_job = dg.define_asset_job(
    name="mnist_observe_sources",
    selection=dg.AssetSelection.assets("mnist_files"),
    description="Record the MNIST files' data version, so new or changed files mark their assets unsynced.",
)

train_evaluate_report_job = dg.define_asset_job(
    name="mnist_train_evaluate_report",
    selection=dg.AssetSelection.assets("hyperparameters").downstream(),
    description=(
        "Set the hyperparameters, rebuild and retrain the model on the stored data, then evaluate, "
        "predict and plot again. The data assets are not recomputed."
    ),
)

predictions_and_plots_job = dg.define_asset_job(
    name="mnist_predictions_and_plots",
    selection=dg.AssetSelection.assets("predictions_table", "digit_plots"),
    description="Rebuild the predictions table and the plots from the stored model, data and metrics; no training.",
)

promote_model_job = dg.define_asset_job(
    name="mnist_promote_model",
    selection=dg.AssetSelection.assets("production_model"),
    description=(
        "Serve a registered model version: set production_model's config (version, reason). Its files are "
        "verified and its recorded evaluation must pass the accuracy gate. `mnist-pipeline models promote` runs this."
    ),
)

JOBS = [full_pipeline_job, train_evaluate_report_job, predictions_and_plots_job, observe_sources_job, promote_model_job]
