"""A sweep: add its candidates as partitions, decide which need training, run those, one run each.

Which candidates need a run is decided here, once: a candidate is up to date when
its candidate_model partition's last materialization recorded the training key
(assets.training_key: code version, full config, data version) that training it
now would have, and candidate_evaluation of that partition came after it. Every
other candidate (never trained, trained with other code or data, or trained but
not evaluated) gets a run. The answers come from Dagster's event log through the
instance's public API (`fetch_materializations`).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg

from mnist_pipeline.defs.experiments.assets import (
    CANDIDATES,
    SCALED_MNIST,
    TRAINING_KEY_METADATA,
    candidate_evaluation,
    candidate_model,
    candidate_params,
    training_key,
)
from mnist_pipeline.defs.domain import domain_asset
from mnist_pipeline.defs.executor import register_training_pool
from mnist_pipeline.defs.interrupts import was_interrupted
from mnist_pipeline.defs.experiments import definitions as experiments
from mnist_pipeline.defs.experiments.resources import ExperimentStore
from mnist_pipeline.defs.io_managers import verified_data_version
from mnist_pipeline.ml.model.candidates import Candidate

PARTITION_TAG = "dagster/partition"  # the run tag by which Dagster names the partition a run materializes


def add_candidates(instance: dg.DagsterInstance, store: ExperimentStore, candidates: Sequence[Candidate]) -> list[str]:
    """Write each candidate's config record, then add the keys not yet partitions; returns the keys added.

    Records first: a partition never exists without the config it is trained with. The training pool's
    limit is stored first of all, before a backfill of the new partitions can queue their runs.
    """
    register_training_pool(instance)
    for candidate in candidates:
        store.write_config(candidate)
    known = set(instance.get_dynamic_partitions(CANDIDATES.name))
    new = [candidate.key for candidate in candidates if candidate.key not in known]
    if new:
        instance.add_dynamic_partitions(CANDIDATES.name, new)
    return new


def _latest(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None


@dataclass(frozen=True)
class Plan:
    to_run: list[str]  # keys, in sweep order
    up_to_date: list[str]


def plan(instance: dg.DagsterInstance, candidates: Sequence[Candidate]) -> Plan:
    """Which candidates need a run, in sweep order."""
    # What the asset itself records: its code version is set with the domain's annotations (defs/domain.py).
    code = domain_asset(experiments.defs, candidate_model).code_versions_by_key[candidate_model.key]
    data_version = verified_data_version(instance, SCALED_MNIST)
    to_run, up_to_date = [], []
    for candidate in candidates:
        model = _latest(instance, candidate_model.key, candidate.key)
        evaluation = _latest(instance, candidate_evaluation.key, candidate.key)
        recorded = model.asset_materialization.metadata.get(TRAINING_KEY_METADATA) if model else None
        current = (
            data_version is not None
            and recorded is not None
            and recorded.value == training_key(code, candidate_params(candidate), data_version)
            and evaluation is not None
            and evaluation.storage_id > model.storage_id
        )
        (up_to_date if current else to_run).append(candidate.key)
    return Plan(to_run=to_run, up_to_date=up_to_date)


@dataclass(frozen=True)
class CandidateOutcome:
    key: str
    success: bool
    run_id: str
    interrupted: bool  # SIGINT or SIGTERM stopped the run (the sweep then stops too: cli/sweep.py)


def run_candidate(
    job: Callable[[], dg.JobDefinition], instance: dg.DagsterInstance, key: str, run_config: dict | None = None
) -> CandidateOutcome:
    """One run of the candidates job for partition `key` (its own run, so the UI lists it)."""
    with dg.execute_job(
        dg.reconstructable(job), instance, run_config=run_config or {}, tags={PARTITION_TAG: key}, raise_on_error=False
    ) as result:
        return CandidateOutcome(key, result.success, result.run_id, not result.success and was_interrupted(result.all_events))
