"""The serving domain's assets."""

from mnist_pipeline.defs.serving import assets
from mnist_pipeline.defs.domain import domain_definitions

defs = domain_definitions("serving", [assets])
