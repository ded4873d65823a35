"""One domain's definitions, with the annotations every asset of it shares set here once.

Each domain folder (data, model, evaluation, reports, serving, experiments) has a
`definitions.py` that calls `domain_definitions`; `mnist_pipeline/definitions.py`
merges them. An asset's decorator says only what is its own (its IO manager,
kinds, inputs); the group (the domain's name), the owner, the `domain` tag and
the code version (derived from the source by one rule, defs/code_version.py)
come from here, so the asset objects Dagster loads are these, not the bare
decorated functions of the modules.
"""

from __future__ import annotations

from types import ModuleType
from typing import Sequence

import dagster as dg

from mnist_pipeline.defs.code_version import code_version

OWNERS = ["team:ml-platform"]


def _annotated(asset: dg.AssetsDefinition, domain: str, module: ModuleType) -> dg.AssetsDefinition:
    """`asset` in group `domain`, owned by OWNERS, tagged with its domain, and versioned by the source of its
    function (the op is named after it) and of everything that function relies on."""
    version = code_version(module.__name__, asset.op.name) if asset.is_materializable else None
    return asset.map_asset_specs(
        lambda spec: spec.merge_attributes(owners=OWNERS, tags={"domain": domain}).replace_attributes(
            code_version=version if version is not None else spec.code_version
        )
    )


def domain_definitions(domain: str, asset_modules: Sequence[ModuleType], check_modules: Sequence[ModuleType] = ()) -> dg.Definitions:
    """The assets and checks of `domain`'s modules, annotated as `_annotated` says."""
    assets = [
        _annotated(asset, domain, module) if isinstance(asset, dg.AssetsDefinition) else asset
        for module in asset_modules
        for asset in dg.load_assets_from_modules([module], group_name=domain)
    ]
    return dg.Definitions(assets=assets, asset_checks=dg.load_asset_checks_from_modules(check_modules))


def domain_asset(definitions: dg.Definitions, asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """The annotated definition of a module's `asset`, as `definitions` holds it (the one with its code version)."""
    return next(held for held in definitions.assets if isinstance(held, dg.AssetsDefinition) and held.key == asset.key)
