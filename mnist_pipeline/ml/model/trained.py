"""A fitted model together with its per-epoch history, its version and the lineage it is registered with."""

from __future__ import annotations

from typing import Any, Callable


class TrainedModel:
    """The trained_model asset's value.

    Read back from storage, the Keras model is loaded only when `model` is first
    used (through `load`): a step that needs only the history (the plots) never
    imports Keras or reads the model file.
    """

    def __init__(
        self,
        model: Any = None,
        history: dict[str, list[float]] | None = None,
        *,
        version: str | None = None,
        lineage: dict[str, Any] | None = None,
        load: Callable[[], Any] | None = None,
    ):
        if model is None and load is None:
            raise ValueError("TrainedModel: expected a model or a way to load one, found neither")
        self._model = model  # keras.Model; not imported here to keep start-up free of TensorFlow
        self._load = load
        self.history = history or {}
        self.version = version
        self.lineage = lineage or {}  # run id, input data versions, hyperparameters, code version: the registry's manifest

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None
