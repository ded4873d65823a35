"""The Dagster code location: every domain's assets, the jobs and the resources.

Importing this module must not import TensorFlow; asset bodies import it.
"""

from __future__ import annotations

import dagster as dg

from mnist_pipeline.data import assets as data_assets
from mnist_pipeline.evaluation import assets as evaluation_assets
from mnist_pipeline.jobs import JOBS
from mnist_pipeline.model import assets as model_assets
from mnist_pipeline.reports import assets as report_assets
from mnist_pipeline.resources import resources_for_env

all_assets = dg.load_assets_from_modules([data_assets, model_assets, evaluation_assets, report_assets])

defs = dg.Definitions(
    assets=all_assets,
    jobs=JOBS,
    resources=resources_for_env(),
    executor=dg.in_process_executor,
)
