"""The quality bar a model must clear before it is served."""

from typing import Optional

import dagster as dg
from pydantic import Field

from mnist_pipeline import settings


class QualityGates(dg.ConfigurableResource):
    """Thresholds of the blocking gates, set per deployment by MNIST_MIN_TEST_ACCURACY."""

    min_test_accuracy: Optional[float] = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description=f"Lowest test accuracy a served model may have; unset: ${settings.MIN_TEST_ACCURACY}, "
        f"else {settings.DEFAULT_MIN_TEST_ACCURACY}.",
    )

    def threshold(self) -> float:
        """The lowest test accuracy that passes; a malformed MNIST_MIN_TEST_ACCURACY fails here, where it is used."""
        return self.min_test_accuracy if self.min_test_accuracy is not None else settings.min_test_accuracy()

    def accuracy_passes(self, test_accuracy: float) -> tuple[bool, str]:
        threshold = self.threshold()
        return test_accuracy >= threshold, f"expected test accuracy >= {threshold:.4f}, found {test_accuracy:.4f}"
