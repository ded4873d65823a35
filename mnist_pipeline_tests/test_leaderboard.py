"""The leaderboard table: ranked by validation accuracy, never by test accuracy (ml/evaluation/leaderboard.py)."""

from __future__ import annotations

import pytest

from mnist_pipeline.ml.evaluation.leaderboard import LEADERBOARD_COLUMNS, CandidateResult, build_leaderboard


def result(key: str, validation: float, test: float, seconds: float = 10.0) -> CandidateResult:
    preset, seed = key.split("-s")
    return CandidateResult(
        candidate=key, preset=preset, seed=int(seed), overrides="", validation_accuracy=validation,
        test_accuracy=test, test_loss=1 - test, training_seconds=seconds, parameter_count=1000,
        model_version=f"v-{key}",
    )


def test_ranked_by_validation_accuracy_not_test_accuracy():
    # best-s1 has the highest test accuracy but the lowest validation accuracy: it must come last.
    table = build_leaderboard(
        [result("best-s0", 0.990, 0.980), result("best-s1", 0.970, 0.999), result("best-s2", 0.995, 0.985)]
    )
    assert list(table.columns) == LEADERBOARD_COLUMNS
    assert list(table["candidate"]) == ["best-s2", "best-s0", "best-s1"]
    assert list(table["rank"]) == [1, 2, 3]


def test_ties_go_to_the_faster_candidate():
    table = build_leaderboard([result("best-s0", 0.99, 0.98, seconds=20), result("fast-s0", 0.99, 0.97, seconds=5)])
    assert list(table["candidate"]) == ["fast-s0", "best-s0"]


def test_a_candidate_twice_is_an_error():
    with pytest.raises(ValueError, match=r"expected one result per candidate, found 2 results for \['best-s0'\]"):
        build_leaderboard([result("best-s0", 0.9, 0.9), result("best-s0", 0.8, 0.8)])
