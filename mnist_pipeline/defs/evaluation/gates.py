"""The quality bar a model must clear before it is served."""

from typing import Optional, Union

from pydantic import field_validator

from mnist_pipeline import settings
from mnist_pipeline.defs.settings_resource import SettingsFromEnvironment, variable_field
from mnist_pipeline.ml.evaluation.gate import meets_accuracy_gate


class QualityGates(SettingsFromEnvironment):
    """Thresholds of the blocking gates, set per deployment by MNIST_MIN_TEST_ACCURACY."""

    # A string, parsed when used: so a dg.EnvVar can set it (Dagster refuses one for a float field), and a
    # malformed value fails the gate that uses it, with the same message whichever way it was set.
    min_test_accuracy: Optional[str] = variable_field(
        "Lowest test accuracy a served model may have, a number from 0 to 1.",
        settings.MIN_TEST_ACCURACY,
        str(settings.DEFAULT_MIN_TEST_ACCURACY),
    )

    @field_validator("min_test_accuracy", mode="before")
    @classmethod
    def _number_as_text(cls, value: Union[str, float, None]) -> Optional[str]:
        """`QualityGates(min_test_accuracy=0.9)` in Python code: a number is kept as its text, checked when used."""
        return repr(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    def threshold(self) -> float:
        """The lowest test accuracy that passes; a malformed value fails here, where it is used, naming what set it."""
        found, source = self.setting("min_test_accuracy")
        return settings.DEFAULT_MIN_TEST_ACCURACY if found is None else settings.parse_min_test_accuracy(found, source)

    def accuracy_passes(self, test_accuracy: float) -> tuple[bool, str]:
        """The accuracy gate (ml/evaluation/gate.py) at this deployment's threshold: the check and the serving step both ask this."""
        return meets_accuracy_gate(test_accuracy, self.threshold())
