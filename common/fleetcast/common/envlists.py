"""List-valued settings from the environment: ``a,b`` as well as a JSON list.

pydantic-settings reads a list field as JSON only; operators write
``FLEETCAST_KAFKA_TOPICS=a,b``. A field typed :data:`EnvList` takes both.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BeforeValidator
from pydantic_settings import NoDecode


def split_list(value: Any) -> Any:
    """``"a, b"`` -> ``["a", "b"]``; a JSON list is parsed; anything else passes through."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


#: A list of strings set as ``a,b`` or ``["a","b"]``.
EnvList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]
