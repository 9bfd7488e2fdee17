"""How messages quote what IT wrote: in double quotes, as TOML and JSON do."""

from __future__ import annotations

import json


def quote(value: object) -> str:
    """``"Hub Owners"``, never Python's ``'Hub Owners'``."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
