"""The model domain's assets and checks."""

from mnist_pipeline.defs.model import assets, checks
from mnist_pipeline.defs.domain import domain_definitions

defs = domain_definitions("model", [assets], [checks])
