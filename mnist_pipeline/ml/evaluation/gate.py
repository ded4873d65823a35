"""The accuracy gate: the one rule deciding whether a model is good enough to serve.

The blocking asset check, production_model and `mnist-pipeline models promote`
all reach their verdict through `meets_accuracy_gate`, so they can never disagree.
"""

from __future__ import annotations


def meets_accuracy_gate(test_accuracy: float, threshold: float) -> tuple[bool, str]:
    """Whether `test_accuracy` clears `threshold`, and what was expected and found (for a check or a refusal)."""
    return test_accuracy >= threshold, f"expected test accuracy >= {threshold:.4f}, found {test_accuracy:.4f}"
