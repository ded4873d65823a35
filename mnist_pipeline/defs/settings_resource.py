"""Resources whose fields fall back to environment variables, read when a value is used.

Each field that falls back to a variable is declared with `variable_field`,
which names its variable once: the field's description says it, and the class's
ENVIRONMENT (field -> variable) is gathered from the fields when the class is
built. A field's value, in order:
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

# Where variable_field records its variable, in the field's pydantic metadata.
_VARIABLE = "environment_variable"


def from_variable(what: str, variable: str, default: str) -> str:
    """A field's description: what it is, the variable that sets it when unset, and the default after that."""
    return f"{what} Unset: ${variable}, read when used; if that is unset or empty too: {default}."


def variable_field(what: str, variable: str, default: str) -> Any:
    """A field of a SettingsFromEnvironment set by `variable` when not configured (None until then), described by
    from_variable: the UI's resource page shows the variable and the default under the field's name."""
    return Field(default=None, description=from_variable(what, variable, default), json_schema_extra={_VARIABLE: variable})


class SettingsFromEnvironment(dg.ConfigurableResource):
    """Base of the resources whose unset fields come from environment variables (see the module docstring)."""

    # Field name -> the environment variable that sets it when the field is not configured: gathered from the
    # fields declared with variable_field, so each variable is named in one place.
    ENVIRONMENT: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.ENVIRONMENT = {
            name: field.json_schema_extra[_VARIABLE]
            for name, field in cls.model_fields.items()
            if isinstance(field.json_schema_extra, dict) and _VARIABLE in field.json_schema_extra
        }

    def setting(self, field: str) -> tuple[Any, str]:
        """The field's value (None: use the default) and what set it, to name in an error: the field or the variable."""
        configured = getattr(self, field)
        if configured is not None and configured != "":
            return configured, f"{type(self).__name__}.{field}"
        variable = self.ENVIRONMENT[field]
        return dg.EnvVar(variable).get_value() or None, variable
