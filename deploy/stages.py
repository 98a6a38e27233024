"""Import a stage's class by name; which stages exist is bus.topology's STAGES."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bus.topology import stage_spec

if TYPE_CHECKING:
    from bus.stage import Stage


def stage_class(name: str) -> type[Stage]:
    module, cls = stage_spec(name).target.split(":")
    found: type[Stage] = getattr(importlib.import_module(module), cls)
    return found
