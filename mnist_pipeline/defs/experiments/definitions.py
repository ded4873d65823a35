"""The experiments domain's assets and the jobs a sweep launches (its record storage: defs/resources.py, with the rest)."""

import dagster as dg

from mnist_pipeline.defs.domain import domain_definitions
from mnist_pipeline.defs.experiments import assets, champion

# One run per candidate (a partition of both assets): in the UI, a backfill of this job over the candidates.
candidates_job = dg.define_asset_job(
    name="mnist_sweep_candidates",
    selection=dg.AssetSelection.assets(assets.candidate_model, assets.candidate_evaluation),
    partitions_def=assets.CANDIDATES,
    description="Train and evaluate one sweep candidate (a partition of 'candidates'); backfill it over a sweep's candidates.",
)

leaderboard_job = dg.define_asset_job(
    name="mnist_leaderboard",
    selection=dg.AssetSelection.assets(assets.leaderboard, champion.champion_model),
    description=(
        "Rank every evaluated sweep candidate by validation accuracy (the table and plot are in its metadata), "
        "and choose the champion: the mean of the best k candidates, k the largest (up to 10) unless a smaller k "
        "(the best candidate alone included) is more accurate on validation beyond chance."
    ),
)

defs = dg.Definitions.merge(
    domain_definitions("experiments", [assets, champion]),
    dg.Definitions(jobs=[candidates_job, leaderboard_job]),
)
