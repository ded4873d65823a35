"""The sweep leaderboard: one row per candidate, ranked by validation accuracy.

Ranked by validation accuracy and never by test accuracy: picking the best of
many candidates by their test score would tune on the test set, and the test
accuracy shown would then overstate what the chosen model does on new digits.
Test accuracy and loss are shown beside it, for reading, not for ranking.
Ties on validation accuracy go to the faster candidate, then the key, so the
order is the same on every run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where a table is built: the code location loads without it
    import pandas as pd

LEADERBOARD_COLUMNS = [
    "rank",
    "candidate",
    "validation_accuracy",
    "test_accuracy",
    "test_loss",
    "training_seconds",
    "parameter_count",
    "preset",
    "overrides",
    "seed",
    "model_version",
]


@dataclass(frozen=True)
class CandidateResult:
    candidate: str  # the partition key
    preset: str
    seed: int
    overrides: str  # e.g. "learning_rate=0.002"; empty without overrides
    validation_accuracy: float  # the trained network's, on the held-out images (TrainingOutcome.validation_accuracy)
    test_accuracy: float
    test_loss: float
    training_seconds: float
    parameter_count: int
    model_version: str


def build_leaderboard(results: Iterable[CandidateResult]) -> pd.DataFrame:
    """The leaderboard table, best validation accuracy first, ranks from 1."""
    import pandas as pd

    rows = list(results)
    keys = [row.candidate for row in rows]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"expected one result per candidate, found {len(rows)} results for {duplicates}")
    rows.sort(key=lambda row: (-row.validation_accuracy, row.training_seconds, row.candidate))
    table = pd.DataFrame(
        [{"rank": rank, **row.__dict__} for rank, row in enumerate(rows, start=1)],
        columns=LEADERBOARD_COLUMNS,
    )
    return table.astype({"rank": "int64", "seed": "int64", "parameter_count": "int64"})
