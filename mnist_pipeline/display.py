"""How numbers and tables appear in the UI's metadata: one rounding rule for every measured float.

Keras computes in float32; shown as a Python float, 0.0002 becomes
0.00019999999494757503 and an accuracy of 0.9752 becomes 0.9751999974250793.
Four significant digits is what the figures can carry: an accuracy over
10,000 test images moves in steps of 0.0001. Stored artifacts, the registry
and the gates keep the exact values; only what is shown is rounded.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

SIGNIFICANT_DIGITS = 4


def rounded(value: float) -> float:
    """`value` to SIGNIFICANT_DIGITS significant digits, as a plain float (so the UI can still plot it)."""
    return float(f"{float(value):.{SIGNIFICANT_DIGITS}g}")


def shown(value: Any) -> Any:
    """A cell or metadata value as shown: floats (numpy's too) rounded, other numpy scalars as Python values."""
    if isinstance(value, (float, np.floating)):
        return rounded(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def rounded_history(history: dict[str, Sequence[float]]) -> dict[str, list[float]]:
    """A training history (metric -> per-epoch values) as shown."""
    return {metric: [rounded(value) for value in values] for metric, values in history.items()}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, every float cell rounded."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(shown(cell)) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
