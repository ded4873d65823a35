"""One domain's definitions, with the annotations every asset of it shares set here once.

Each domain folder (data, model, evaluation, reports, serving) has a `definitions.py`
that calls `domain_definitions`; `mnist_pipeline/definitions.py` merges them. An
asset's decorator says only what is its own (its IO manager, kinds, inputs, code
version); the group (the domain's name), the owner and the `domain` tag come from here.
"""

from __future__ import annotations

from types import ModuleType
from typing import Sequence

import dagster as dg

OWNERS = ["team:ml-platform"]


def domain_definitions(domain: str, asset_modules: Sequence[ModuleType], check_modules: Sequence[ModuleType] = ()) -> dg.Definitions:
    """The assets and checks of `domain`'s modules, each asset in group `domain`, owned by OWNERS and tagged with its domain."""
    assets = dg.map_asset_specs(
        lambda spec: spec.merge_attributes(owners=OWNERS, tags={"domain": domain}),
        dg.load_assets_from_modules(asset_modules, group_name=domain),
    )
    return dg.Definitions(assets=assets, asset_checks=dg.load_asset_checks_from_modules(check_modules))
