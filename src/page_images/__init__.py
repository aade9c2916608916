"""One-click AI illustrations for any Django model."""

from __future__ import annotations

__version__ = "0.1.0.dev0"
