"""What every part of the FleetBroadcast spec model shares: the model base, CEL rules, types.

See :mod:`.spec` for why the model is the source of the CRD.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
TOPIC_PATTERN = r"^[A-Za-z0-9._-]+$"

Name = Annotated[str, Field(min_length=1, max_length=253)]
Topic = Annotated[str, Field(min_length=1, max_length=249, pattern=TOPIC_PATTERN)]
Quantity = int | Annotated[str, Field(pattern=QUANTITY_PATTERN)]
Quantities = Annotated[dict[str, Quantity], Field(max_length=8)]
Replicas = Annotated[int, Field(ge=1, le=1000)]
RoomKindName = Literal["org", "user", "channel", "incident", "asset", "fleet"]
LabelMap = Annotated[dict[str, Annotated[str, Field(max_length=1024)]], Field(max_length=64)]


class Model(BaseModel):
    """A part of the spec: camelCase names, frozen, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


def rules(*rules: tuple[str, str]) -> ConfigDict:
    """A model's CEL rules (rule, message), checked by the API server."""
    validations: list[JsonValue] = [{"rule": rule, "message": message} for rule, message in rules]
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": validations})


def unique(**constraints: Any) -> Any:
    """A list field whose items are unique (``x-kubernetes-list-type: set``)."""
    return Field(**constraints, json_schema_extra={"x-kubernetes-list-type": "set"})
