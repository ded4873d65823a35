"""The Dagster code location: every domain's definitions merged, with the jobs, automation and resources.

Each domain (mnist_pipeline/defs/<domain>/definitions.py) brings its assets and
checks; `defs` adds what spans them when Dagster loads the code location
(`@dg.definitions`), not when this module is imported. Importing it must not
import TensorFlow, Keras or matplotlib (asset bodies import them) and reads no
setting; loading it reads one, the schedule's cron (MNIST_RETRAIN_CRON).
"""

from __future__ import annotations

import dagster as dg

from mnist_pipeline.defs.automation.retraining import mnist_files_changed, weekly_retraining_schedule
from mnist_pipeline.defs.automation.run_health import dead_runs_failed
from mnist_pipeline.defs.data import definitions as data
from mnist_pipeline.defs.evaluation import definitions as evaluation
from mnist_pipeline.defs.executor import pipeline_executor
from mnist_pipeline.defs.experiments import definitions as experiments
from mnist_pipeline.defs.jobs import JOBS
from mnist_pipeline.defs.model import definitions as model
from mnist_pipeline.defs.reports import definitions as reports
from mnist_pipeline.defs.resources import resources_for_env
from mnist_pipeline.defs.serving import definitions as serving

# The main chain, which `all_assets` materializes in one run; the experiments (sweep candidates, one
# partition per run, and their leaderboard) join it in the code location only.
DOMAINS = (data.defs, model.defs, evaluation.defs, reports.defs, serving.defs)
all_assets = [asset for domain in DOMAINS for asset in domain.assets]
all_checks = [check for domain in DOMAINS for check in domain.asset_checks]


@dg.definitions
def defs() -> dg.Definitions:
    """The code location as Dagster loads it: the domains, the jobs, the automation and the resources."""
    return dg.Definitions.merge(
        *DOMAINS,
        experiments.defs,
        dg.Definitions(
            jobs=JOBS,
            schedules=[weekly_retraining_schedule()],
            sensors=[mnist_files_changed, dead_runs_failed],
            resources=resources_for_env(),
            executor=pipeline_executor,  # every job's: chosen by MNIST_PIPELINE_ENV when a run starts
        ),
    )
