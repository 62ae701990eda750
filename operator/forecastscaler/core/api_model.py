"""The base of every ForecastScaler API model: camelCase on the wire, snake_case in Python,
unknown fields refused (a typo in a manifest is an error, not a silent default), immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )
