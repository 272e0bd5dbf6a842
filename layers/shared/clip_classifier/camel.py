"""The one naming rule of everything the classifier writes as JSON or stores: camelCase on the wire and in
DynamoDB, snake_case in Python (the API's models, the table item, the result fields)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """camelCase on the wire and in DynamoDB, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
