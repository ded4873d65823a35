"""The quality bar a model must clear before it is served."""

import dagster as dg
from pydantic import Field

DEFAULT_MIN_TEST_ACCURACY = 0.97


class QualityGates(dg.ConfigurableResource):
    """Thresholds of the blocking gates (set per deployment, e.g. MNIST_MIN_TEST_ACCURACY)."""

    min_test_accuracy: float = Field(
        default=DEFAULT_MIN_TEST_ACCURACY, ge=0.0, le=1.0, description="Lowest test accuracy a served model may have."
    )

    def accuracy_passes(self, test_accuracy: float) -> tuple[bool, str]:
        passed = test_accuracy >= self.min_test_accuracy
        return passed, f"expected test accuracy >= {self.min_test_accuracy:.4f}, found {test_accuracy:.4f}"
