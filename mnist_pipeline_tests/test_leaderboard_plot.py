"""The leaderboard plot (ml/reports/plots.leaderboard_scatter)."""

from __future__ import annotations

import pytest

from mnist_pipeline.ml.reports.plots import leaderboard_scatter, style, to_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("production", "ringed"), [("v-b", 1), ("v-elsewhere", 0), (None, 0)])
def test_plot_rings_the_production_model_only_when_it_is_a_candidate(production, ringed):
    with style():
        figure = leaderboard_scatter(["best-s0", "best-s1"], [10.0, 12.5], [0.99, 0.985], ["v-a", "v-b"], production)
        png = to_png(figure)
    axes = figure.axes[0]
    assert len(axes.collections) == 1 + ringed  # the candidates, plus the ring when production is among them
    assert (axes.get_legend() is not None) == bool(ringed)
    assert png.startswith(PNG_SIGNATURE) and len(png) < 100_000


def test_plot_rejects_columns_of_different_lengths():
    with pytest.raises(ValueError, match="found 2, 1, 2 and 2"):
        leaderboard_scatter(["a", "b"], [1.0], [0.9, 0.8], ["v1", "v2"], None)
