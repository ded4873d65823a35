"""Which model the serving step serves: decided here, in one place, per deployment."""

from typing import Optional

from mnist_pipeline import settings
from mnist_pipeline.defs.settings_resource import SettingsFromEnvironment, variable_field


class ServedModel(SettingsFromEnvironment):
    """The asset whose latest model production_model serves: the main chain's, or a sweep's champion."""

    source: Optional[str] = variable_field(
        "main: serve the model trained_model last produced; champion: the one champion_model last chose.",
        settings.SERVED_MODEL,
        settings.DEFAULT_SERVED_MODEL,
    )

    def asset(self) -> str:
        """The asset whose last materialization names the version to serve; a malformed value fails here, naming what set it."""
        found, where = self.setting("source")
        return settings.SERVED_MODEL_SOURCES[settings.parse_served_model(found or settings.DEFAULT_SERVED_MODEL, where)]
