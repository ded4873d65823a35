"""The Dagster code location: every domain's assets, the jobs and the resources.

Importing this module must not import TensorFlow; asset bodies import it.
"""

from __future__ import annotations

import dagster as dg

from mnist_pipeline.data import assets as data_assets
from mnist_pipeline.data import checks as data_checks
from mnist_pipeline.evaluation import assets as evaluation_assets
from mnist_pipeline.evaluation import checks as evaluation_checks
from mnist_pipeline.jobs import JOBS
from mnist_pipeline.model import assets as model_assets
from mnist_pipeline.model import checks as model_checks
from mnist_pipeline.reports import assets as report_assets
from mnist_pipeline.serving import assets as serving_assets
from mnist_pipeline.resources import resources_for_env
from mnist_pipeline.retraining import mnist_files_changed, weekly_retraining
from mnist_pipeline.run_health import dead_runs_failed

all_assets = dg.load_assets_from_modules([data_assets, model_assets, evaluation_assets, report_assets, serving_assets])
all_checks = dg.load_asset_checks_from_modules([data_checks, model_checks, evaluation_checks])

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=JOBS,
    schedules=[weekly_retraining],
    sensors=[mnist_files_changed, dead_runs_failed],
    resources=resources_for_env(),
    executor=dg.in_process_executor,
)
