"""The reports domain's assets."""

from mnist_pipeline.defs.reports import assets
from mnist_pipeline.defs.domain import domain_definitions

defs = domain_definitions("reports", [assets])
