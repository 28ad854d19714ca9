"""What every environment's ``step`` says of a step that did not apply."""

from __future__ import annotations

from typing import Any


def mark_invalid(info: dict[str, Any], invalid: str | None, failure: str | None = None
                 ) -> dict[str, Any]:
    """``info`` with ``invalid_action`` (why the step changed nothing) and ``failure`` (the
    failure's kind), where given."""
    if invalid is not None:
        info["invalid_action"] = invalid
    if failure is not None:
        info["failure"] = failure
    return info
