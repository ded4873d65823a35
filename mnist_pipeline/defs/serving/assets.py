"""production_model: the model version that is served, and the only writer of that pointer.

A pipeline run moves it to the version trained_model just produced, when every
gate passes; with MNIST_SERVED_MODEL=champion (resources.py, the one place that
chooses), to the version champion_model last chose, in the main chain's runs and
the champion's alike. `mnist-pipeline models promote VERSION --reason R` is a run of this
asset alone, configured with that version (a rollback, or forward again): so
every change of the served model is a run in Dagster's history.
"""

from typing import Optional

import dagster as dg
from pydantic import Field

from mnist_pipeline.display import rounded
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.defs.serving.resources import ServedModel
from mnist_pipeline.settings import SERVED_MODEL
from mnist_pipeline.defs.evaluation.resources import EvaluationRecordsResource
from mnist_pipeline.ml.model.weights import weights_finite
from mnist_pipeline.registry.promotion import PRODUCTION_ASSET, PromotionRefused, check_promotable, pointer, replaced_version
from mnist_pipeline.ml.content_versions import json_version
from mnist_pipeline.defs.model.resources import ModelRegistryResource

TRAINED_MODEL_ASSET = "trained_model"
PIPELINE_REASON = "passed every gate"
BY_HAND_REASON = "promoted by hand"


class Promotion(dg.Config):
    """Which version to serve: by default the one trained_model produced; or any registered version."""

    version: Optional[str] = Field(
        default=None,
        description="A registered model version to serve (a rollback); empty: the version trained_model (or, with MNIST_SERVED_MODEL=champion, champion_model) last produced.",
    )
    reason: Optional[str] = Field(default=None, description="Why, recorded with the promotion.")


def current_production(instance: dg.DagsterInstance) -> dict[str, str | None]:
    """The served version and the one served before it, as the last materialization of production_model recorded."""
    event = instance.get_latest_materialization_event(dg.AssetKey(PRODUCTION_ASSET))
    metadata = event.asset_materialization.metadata if event is not None and event.asset_materialization else {}
    values = {name: metadata[name].value if name in metadata else None for name in ("version", "previous_version")}
    return {name: None if value == "none" else value for name, value in values.items()}


def latest_version_of(instance: dg.DagsterInstance, asset: str) -> str:
    """The model version of `asset`'s last materialization (trained_model's: in a pipeline run, the one this run trained)."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    metadata = event.asset_materialization.metadata if event is not None and event.asset_materialization else {}
    if "model_version" not in metadata:
        how = "run the pipeline first" if asset == TRAINED_MODEL_ASSET else "run `mnist-pipeline sweep` first"
        raise PromotionRefused(
            f"{PRODUCTION_ASSET}: expected a materialization of {asset} to serve ({SERVED_MODEL} chooses it), found none; "
            f"{how}, or name a registered version in the config (version)"
        )
    return metadata["model_version"].value


@dg.asset(
    io_manager_key="json_io_manager",
    kinds={"keras", "json"},
    # Downstream of every gated asset: a failed blocking check on any of them skips this step. Not inputs:
    # the version served is read from the registry (and a promotion serves a version none of them hold).
    deps=["predictions_table", TRAINED_MODEL_ASSET, "evaluation_metrics"],
)
def production_model(
    context: dg.AssetExecutionContext,
    config: Promotion,
    quality_gates: QualityGates,
    served_model: ServedModel,
    model_registry: ModelRegistryResource,
    evaluation_records: EvaluationRecordsResource,
) -> dg.Output[dict]:
    """Pointer to the served model version in the registry; moved only when the version passes every gate."""
    version = config.version or latest_version_of(context.instance, served_model.asset())
    reason = config.reason or (BY_HAND_REASON if config.version else PIPELINE_REASON)
    registry = model_registry.registry()
    # Checked here, so no run can skip the gate: the registry's files against their recorded SHA-256, the
    # version's own evaluation against the accuracy gate, and a safe-mode load (shared with the run's other steps).
    evaluation, model = check_promotable(registry, evaluation_records.records(), quality_gates, version)
    finite, found = weights_finite(model.get_weights())
    if not finite:
        raise PromotionRefused(f"model {version}: {found}")
    previous = replaced_version(version, current_production(context.instance))
    served = pointer(version, evaluation["test_accuracy"], reason, context.run_id, previous)
    context.log.info(f"Serving model {version} (test accuracy {served['test_accuracy']:.4f}; previously {previous}): {reason}")
    return dg.Output(
        served,
        data_version=dg.DataVersion(json_version({"version": version})),
        metadata={
            "version": version,
            "test_accuracy": rounded(served["test_accuracy"]),
            "previous_version": previous or "none",
            "reason": reason,
            "model_path": dg.MetadataValue.path(str(registry.model_path(version))),
        },
    )
