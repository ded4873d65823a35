"""The data domain's assets and checks."""

from mnist_pipeline.defs.data import assets, checks
from mnist_pipeline.defs.domain import domain_definitions

defs = domain_definitions("data", [assets], [checks])
