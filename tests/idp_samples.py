"""The recorded Okta and Entra ID lifecycle samples kept in ``tests/replay/samples/``.

``tests/replay/README.md`` describes the step format and the expectation keys.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

LIFECYCLE_SAMPLES = Path(__file__).parent / "replay" / "samples" / "idp_lifecycle.json"


@functools.cache
def _all_steps() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(LIFECYCLE_SAMPLES.read_text(encoding="utf-8")))


def lifecycle_steps(idp: str) -> list[dict[str, Any]]:
    """Every step of ``idp`` ("okta" or "entra"), in the order the IdP sends them."""
    steps = [step for step in _all_steps() if step["idp"] == idp]
    if not steps:
        raise LookupError(f"no {idp!r} step in {LIFECYCLE_SAMPLES}")
    return steps


def sample_body(step_id: str) -> Any:
    """The request body of the step ``step_id`` ("entra-31")."""
    for step in _all_steps():
        if step["id"] == step_id:
            return step["body"]
    raise LookupError(f"no step {step_id!r} in {LIFECYCLE_SAMPLES}")
