"""The weight rule: a model with a NaN or infinite weight is broken, whatever its accuracy says."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def weights_finite(weights: Sequence[np.ndarray]) -> tuple[bool, str]:
    """Whether every weight is finite, and which weight arrays (by index) hold how many non-finite values."""
    bad = {index: int((~np.isfinite(w)).sum()) for index, w in enumerate(weights) if not np.isfinite(w).all()}
    return not bad, f"expected every weight finite, found non-finite values in weight arrays {bad}" if bad else "every weight is finite"
