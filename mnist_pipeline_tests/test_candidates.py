"""Sweep candidates: the partition key rule, the grid, and the sweep flags' errors (ml/model/candidates.py)."""

from __future__ import annotations

import re

import pytest

from mnist_pipeline.ml.model.candidates import (
    OVERRIDES,
    Candidate,
    SweepSpecError,
    expand_grid,
    make_candidate,
    parse_override,
    parse_seeds,
)
from mnist_pipeline.ml.model.presets import RECIPE_LIMITS


@pytest.mark.parametrize(
    ("preset", "seed", "overrides", "pattern"),
    [
        ("best", 3, {}, r"best-s3"),
        ("tutorial", 0, {}, r"tutorial-s0"),
        ("best", 3, {"learning_rate": 0.002}, r"best-s3-lr0\.002-[0-9a-f]{6}"),
        ("fast", 1, {"epochs": 2, "batch_size": 64}, r"fast-s1-bs64-ep2-[0-9a-f]{6}"),
    ],
)
def test_candidate_key_is_readable(preset, seed, overrides, pattern):
    assert re.fullmatch(pattern, make_candidate(preset, seed, overrides).key)


def test_keys_differ_when_configs_differ_and_agree_when_equal():
    a = make_candidate("best", 3, {"learning_rate": 0.002, "epochs": 4})
    b = make_candidate("best", 3, {"epochs": 4, "learning_rate": 0.002})  # same config, other order
    c = make_candidate("best", 3, {"learning_rate": 0.003, "epochs": 4})
    assert a.key == b.key
    assert a.key != c.key
    assert make_candidate("best", 3).key != make_candidate("best", 4).key


def test_record_round_trips_and_rejects_a_record_not_matching_its_key():
    candidate = make_candidate("best", 2, {"learning_rate": 0.002})
    assert Candidate.from_record(candidate.as_record()) == candidate
    tampered = {**candidate.as_record(), "seed": 5}
    with pytest.raises(SweepSpecError, match=r"record for key 'best-s2-lr0\.002-.*' describes key 'best-s5-"):
        Candidate.from_record(tampered)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("best-s3", make_candidate("best", 3)),
        ("tutorial-s0", make_candidate("tutorial", 0)),
        ("best-s3-lr0.002-1a2b3c", None),  # overrides: only the record says which values the hash stands for
        ("huge-s3", None),  # no such preset
        ("best-3", None),
        ("best-s", None),
    ],
)
def test_a_plain_key_is_its_whole_config(key, expected):
    assert Candidate.from_plain_key(key) == expected
    if expected is not None:
        assert expected.key == key  # the inverse of the key rule


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("3", [3]), ("0-4", [0, 1, 2, 3, 4]), ("0,2,5", [0, 2, 5]), ("0-1,1-2", [0, 1, 2])],
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a-b", r"--seeds: expected a seed, a range such as 0-4, or a list such as 0,2,5; found 'a-b'"),
        ("4-0", r"--seeds: expected a range from low to high such as 0-4, found '4-0'"),
        ("-1", r"--seeds: expected a seed"),
        ("0-5000", r"--seeds: expected at most 1000 seeds, found '0-5000'"),
    ],
)
def test_bad_seeds_name_the_flag(text, message):
    with pytest.raises(SweepSpecError, match=message):
        parse_seeds(text)


def test_parse_override():
    assert parse_override("learning_rate=0.002,0.003") == ("learning_rate", [0.002, 0.003])
    assert parse_override("epochs=2") == ("epochs", [2])
    assert parse_override("augmentation=0,1.5,3") == ("augmentation", [0.0, 1.5, 3.0])  # 0: none, allowed


def test_augmentation_is_an_override_of_the_presets_that_augment_only():
    assert expand_grid(["best", "wide"], [0], {"augmentation": [1.5]})[1].key.startswith("wide-s0-aug1.5-")
    with pytest.raises(
        SweepSpecError, match=r"--set augmentation: expected presets whose network augments its training images "
        r"\(best, wide\), found 'fast'"
    ):
        expand_grid(["best", "fast"], [0], {"augmentation": [1.5]})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("momentum=0.9", r"--set: expected an override among augmentation, batch_size, epochs, learning_rate, found 'momentum'"),
        ("learning_rate", r"--set: expected name=value\[,value\.\.\.\] .*; found 'learning_rate'"),
        ("epochs=2.5", r"--set epochs: expected an integer, found '2\.5'"),
        ("learning_rate=fast", r"--set learning_rate: expected a number, found 'fast'"),
        ("batch_size=0", r"--set batch_size: expected a number in \[1, 60000\], found '0'"),
        ("learning_rate=nan", r"--set learning_rate: expected a number in \(0, 10\], found 'nan'"),
        ("learning_rate=0.01,20", r"--set learning_rate: expected a number in \(0, 10\], found '20'"),
        ("epochs=1001", r"--set epochs: expected a number in \[1, 1000\], found '1001'"),
        ("augmentation=1,-0.5", r"--set augmentation: expected a number in \[0, 3\], found '-0\.5'"),
        ("augmentation=3.5", r"--set augmentation: expected a number in \[0, 3\], found '3\.5'"),
        ("augmentation=nan", r"--set augmentation: expected a number in \[0, 3\], found 'nan'"),
    ],
)
def test_bad_overrides_name_the_flag(text, message):
    with pytest.raises(SweepSpecError, match=message):
        parse_override(text)


@pytest.mark.parametrize("field", sorted(RECIPE_LIMITS))
def test_a_sweep_refuses_at_parse_exactly_what_the_run_config_refuses(field):
    """One definition of each field's limits (presets.RECIPE_LIMITS): the edges pass both checks, values past them neither."""
    from mnist_pipeline.defs.model.config import Hyperparameters

    limits = RECIPE_LIMITS[field]
    kind = OVERRIDES[field][1]
    lowest = kind(limits.low) if not limits.low_excluded else limits.low + 1e-6
    for allowed in (lowest, kind(limits.high)):
        assert parse_override(f"{field}={allowed}") == (field, [allowed])
        Hyperparameters.from_values(preset="best", **{field: allowed})
    for refused in (kind(limits.low) - 1 if not limits.low_excluded else limits.low, kind(limits.high) + 1):
        with pytest.raises(SweepSpecError, match=rf"--set {field}: expected a number in "):
            parse_override(f"{field}={refused}")
        with pytest.raises(Exception, match=field):  # pydantic's error, naming the field
            Hyperparameters.from_values(preset="best", **{field: refused})


def test_unknown_preset_names_the_flag():
    with pytest.raises(SweepSpecError, match=r"--preset: expected one of best, fast, tutorial, wide, found 'huge'"):
        expand_grid(["huge"], [0])


@pytest.mark.parametrize(
    ("presets", "seeds", "overrides", "keys"),
    [
        (["best"], [0, 1], None, ["best-s0", "best-s1"]),
        (["best", "fast"], [0], None, ["best-s0", "fast-s0"]),
        (["best", "best"], [0], None, ["best-s0"]),  # a preset named twice is one candidate
    ],
)
def test_expand_grid_without_overrides(presets, seeds, overrides, keys):
    assert [c.key for c in expand_grid(presets, seeds, overrides)] == keys


def test_expand_grid_is_the_full_product_with_overrides():
    grid = expand_grid(["best", "fast"], [0, 1, 2], {"learning_rate": [0.002, 0.003], "epochs": [1]})
    assert len(grid) == 2 * 3 * 2
    assert len({c.key for c in grid}) == len(grid)
    assert {dict(c.overrides)["learning_rate"] for c in grid} == {0.002, 0.003}
    assert all(dict(c.overrides)["epochs"] == 1 for c in grid)


def test_empty_grid_names_the_flag():
    with pytest.raises(SweepSpecError, match="--seeds: expected at least one seed, found none"):
        expand_grid(["best"], [])
