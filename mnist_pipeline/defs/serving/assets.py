"""production_model: the model version that is served, moved only when every gate passes."""

import dagster as dg

from mnist_pipeline.display import rounded
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.ml.model.weights import weights_finite
from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.registry.promotion import PRODUCTION_ASSET, PromotionRefused, check_promotable, pointer, replaced_version
from mnist_pipeline.defs.code_version import code_version
from mnist_pipeline.ml.content_versions import json_version
from mnist_pipeline.defs.model.resources import ModelRegistryResource


def current_production(instance: dg.DagsterInstance) -> dict[str, str | None]:
    """The served version and the one served before it, as the last materialization of production_model recorded."""
    event = instance.get_latest_materialization_event(dg.AssetKey(PRODUCTION_ASSET))
    metadata = event.asset_materialization.metadata if event is not None and event.asset_materialization else {}
    values = {name: metadata[name].value if name in metadata else None for name in ("version", "previous_version")}
    return {name: None if value == "none" else value for name, value in values.items()}


@dg.asset(
    io_manager_key="json_io_manager",
    kinds={"keras", "json"},
    # Downstream of every gated asset: a failed blocking check on any of them skips this step.
    deps=["predictions_table"],
    code_version=code_version(__name__, "production_model"),
)
def production_model(
    context: dg.AssetExecutionContext,
    quality_gates: QualityGates,
    model_registry: ModelRegistryResource,
    trained_model: TrainedModel,
    evaluation_metrics: dict,
) -> dg.Output[dict]:
    """Pointer to the served model version in the registry; promoted only when every gate passes."""
    version = evaluation_metrics["model_version"]
    finite, found = weights_finite(trained_model.model.get_weights())
    if not finite:
        raise PromotionRefused(f"model {version}: {found}")
    # Checked again here, so materializing this asset alone can never skip the gate; and the registry's
    # files are checked against their recorded SHA-256 and loaded once, so a damaged model is never served.
    check_promotable(model_registry.registry(), quality_gates, version)
    previous = replaced_version(version, current_production(context.instance))
    served = pointer(version, evaluation_metrics["test_accuracy"], "passed every gate", context.run_id, previous)
    context.log.info(f"Serving model {version} (test accuracy {served['test_accuracy']:.4f}; previously {previous})")
    return dg.Output(
        served,
        data_version=dg.DataVersion(json_version({"version": version})),
        metadata={
            "version": version,
            "test_accuracy": rounded(served["test_accuracy"]),
            "previous_version": previous or "none",
            "model_path": dg.MetadataValue.path(str(model_registry.registry().model_path(version))),
        },
    )
