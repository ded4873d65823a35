"""Resources whose fields fall back to environment variables, read when a value is used.

Each such resource declares, in one ClassVar, which variable sets which
field. A field's value, in order:
  1. what the resource was given: in code, in the Launchpad, or a `dg.EnvVar`
     bound to it (the fields are strings, so Dagster accepts an EnvVar, and the
     resource page then shows the variable with an "Env var" tag);
  2. else its variable, read when the value is used, through
     `dg.EnvVar(name).get_value()`;
  3. else (unset or empty) the default.

Why not bind every field to `dg.EnvVar` in defs/resources.py: in Dagster 1.13
a field bound to an EnvVar whose variable is unset fails every run at launch
("You have attempted to fetch the environment variable ... which is not set";
Dagster's StringSource, no default possible: dagster-io/dagster#16232), and all
of these variables are optional. Reading them at import instead would break
"nothing reads configuration at import". So the binding lives here and in each
field's description, which the UI's resource page shows under the field's name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import dagster as dg
from pydantic import Field


def variable_field(what: str, variable: str, default: str) -> Any:
    """An optional field that `variable` sets when it is not configured; its description (the UI's resource page
    shows it) says what it is, the variable, and the default after that."""
    return Field(default=None, description=f"{what} Unset: ${variable}, read when used; if that is unset or empty too: {default}.")


class SettingsFromEnvironment(dg.ConfigurableResource):
    """Base of the resources whose unset fields come from environment variables (see the module docstring)."""

    # Field name -> the environment variable that sets it when the field is not configured.
    ENVIRONMENT: ClassVar[dict[str, str]] = {}

    def setting(self, field: str) -> tuple[Any, str]:
        """The field's value (None: use the default) and what set it, to name in an error: the field or the variable."""
        configured = getattr(self, field)
        if configured is not None and configured != "":
            return configured, f"{type(self).__name__}.{field}"
        variable = self.ENVIRONMENT[field]
        return dg.EnvVar(variable).get_value() or None, variable
