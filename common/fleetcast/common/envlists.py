"""List-valued settings from the environment: ``a,b`` as well as a JSON list.

pydantic-settings reads a list field as JSON only; operators write
``FLEETCAST_KAFKA_TOPICS=a,b``. Each component's settings run this as a
``mode="before"`` validator on its list fields (marked ``NoDecode``).
"""

from __future__ import annotations

from typing import Any

import orjson


def split_list(value: Any) -> Any:
    """``"a, b"`` -> ``["a", "b"]``; a JSON list is parsed; anything else passes through."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value
