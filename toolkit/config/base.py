"""The base of every recipe section, apart from the schema so that the tables below the config layer
(export formats' option models) can use it without importing the whole schema."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base of every recipe section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)
