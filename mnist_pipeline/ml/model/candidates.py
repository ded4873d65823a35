"""Sweep candidates: one preset, one seed and optional overrides, and the key that names them.

A sweep is the grid presets x seeds x override values. Each point of it is a
`Candidate`, the unit that becomes one partition of the candidate assets. The
partition key is decided here and nowhere else (`Candidate.key`): readable
(`best-s3`), and with overrides the overrides in short form plus a hash of the
full override set (`best-s3-lr0.002-1a2b3c`), so two candidates with different
configs can never share a key, and the same config always gets the same key.

The sweep's flags (`--seeds 0-4`, `--set learning_rate=0.002,0.003`) are parsed
here too, so the command line and the tests use the same rules and the same
error messages, each naming the flag, what was expected and what was found.

Free of Keras and Dagster: plain data and parsing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mnist_pipeline.ml.model.presets import AUGMENTING_PRESETS, PRESETS, RECIPE_LIMITS

# override name -> (short name used in the key, type of its values)
OVERRIDES: dict[str, tuple[str, type]] = {
    "learning_rate": ("lr", float),
    "epochs": ("ep", int),
    "batch_size": ("bs", int),
    "augmentation": ("aug", float),  # only for the presets whose network augments (AUGMENTING_PRESETS)
}

# Every candidate holds out the same validation images (whatever its training seed), so validation scores
# rank candidates on equal terms and the champion's ensemble is judged on images none of its members saw.
SWEEP_VALIDATION_SEED = 0
MAX_SEEDS = 1000  # a guard against a typo such as 0-99999 starting a sweep of days


class SweepSpecError(ValueError):
    """A sweep flag that cannot be turned into candidates; the message names the flag."""


@dataclass(frozen=True)
class Candidate:
    preset: str
    seed: int
    overrides: tuple[tuple[str, float | int], ...] = field(default=())  # sorted by name

    @property
    def key(self) -> str:
        base = f"{self.preset}-s{self.seed}"
        if not self.overrides:
            return base
        short = "-".join(f"{OVERRIDES[name][0]}{value}" for name, value in self.overrides)
        digest = hashlib.sha256(json.dumps(self.overrides).encode()).hexdigest()[:6]
        return f"{base}-{short}-{digest}"

    def as_record(self) -> dict:
        """The candidate's full config, as stored next to its partition key."""
        return {"key": self.key, "preset": self.preset, "seed": self.seed, "overrides": dict(self.overrides)}

    @classmethod
    def from_plain_key(cls, key: str) -> Candidate | None:
        """The candidate a key without overrides names (`best-s3`), or None for any other key.

        The inverse of `key` where the key holds the whole config: a key typed in the UI's
        "add partition" can then train without a record. Keys with overrides carry a hash,
        so only their record says which values they stand for.
        """
        match = re.fullmatch(r"([a-z]+)-s(\d+)", key)
        if not match or match.group(1) not in PRESETS:
            return None
        return make_candidate(match.group(1), int(match.group(2)))

    @classmethod
    def from_record(cls, record: dict) -> Candidate:
        candidate = make_candidate(record["preset"], record["seed"], record.get("overrides", {}))
        if candidate.key != record["key"]:
            raise SweepSpecError(
                f"candidate record for key {record['key']!r} describes key {candidate.key!r}: "
                "the record does not match its partition key"
            )
        return candidate


def make_candidate(preset: str, seed: int, overrides: dict[str, float | int] | None = None) -> Candidate:
    if preset not in PRESETS:
        raise SweepSpecError(f"--preset: expected one of {', '.join(sorted(PRESETS))}, found {preset!r}")
    unknown = sorted(set(overrides or {}) - set(OVERRIDES))
    if unknown:
        raise SweepSpecError(
            f"--set: expected an override among {', '.join(sorted(OVERRIDES))}, found {unknown[0]!r}"
        )
    if "augmentation" in (overrides or {}) and preset not in AUGMENTING_PRESETS:
        raise SweepSpecError(
            f"--set augmentation: expected presets whose network augments its training images "
            f"({', '.join(AUGMENTING_PRESETS)}), found {preset!r}"
        )
    normalized = tuple(sorted((name, OVERRIDES[name][1](value)) for name, value in (overrides or {}).items()))
    return Candidate(preset=preset, seed=seed, overrides=normalized)


def parse_seeds(text: str) -> list[int]:
    """`3`, `0-4` (inclusive) or `0,2,5` -> the seeds, in order, without duplicates."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise SweepSpecError(
                f"--seeds: expected a seed, a range such as 0-4, or a list such as 0,2,5; found {text!r}"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise SweepSpecError(f"--seeds: expected a range from low to high such as 0-4, found {part.strip()!r}")
        for seed in range(first, last + 1):
            if seed not in seeds:
                seeds.append(seed)
        if len(seeds) > MAX_SEEDS:
            raise SweepSpecError(f"--seeds: expected at most {MAX_SEEDS} seeds, found {text!r}")
    return seeds


def parse_override(text: str) -> tuple[str, list[float | int]]:
    """`learning_rate=0.002,0.003` -> ("learning_rate", [0.002, 0.003])."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise SweepSpecError(f"--set: expected name=value[,value...] such as learning_rate=0.002,0.003; found {text!r}")
    if name not in OVERRIDES:
        raise SweepSpecError(f"--set: expected an override among {', '.join(sorted(OVERRIDES))}, found {name!r}")
    kind = OVERRIDES[name][1]
    parsed: list[float | int] = []
    for raw in values.split(","):
        try:
            value = kind(raw.strip())
        except ValueError:
            raise SweepSpecError(
                f"--set {name}: expected {'an integer' if kind is int else 'a number'}, found {raw.strip()!r}"
            ) from None
        limits = RECIPE_LIMITS[name]  # the run config's limits too (model/config.py): refused here, before any run
        if not limits.allows(value):
            raise SweepSpecError(f"--set {name}: expected a number in {limits.describe()}, found {raw.strip()!r}")
        parsed.append(value)
    return name, parsed


def expand_grid(
    presets: Sequence[str], seeds: Iterable[int], overrides: dict[str, Sequence[float | int]] | None = None
) -> list[Candidate]:
    """Every combination of preset, seed and override values, in a stable order, without duplicates."""
    if not presets:
        raise SweepSpecError("--preset: expected at least one preset, found none")
    seeds = list(seeds)
    if not seeds:
        raise SweepSpecError("--seeds: expected at least one seed, found none")
    names = sorted(overrides or {})
    value_lists = [list((overrides or {})[name]) for name in names]
    candidates: list[Candidate] = []
    for preset, seed, values in itertools.product(presets, seeds, itertools.product(*value_lists)):
        candidate = make_candidate(preset, seed, dict(zip(names, values)))
        if candidate not in candidates:
            candidates.append(candidate)
    return candidates
