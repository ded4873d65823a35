"""The evaluation domain's assets and checks."""

from mnist_pipeline.defs.evaluation import assets, checks
from mnist_pipeline.defs.domain import domain_definitions

defs = domain_definitions("evaluation", [assets], [checks])
