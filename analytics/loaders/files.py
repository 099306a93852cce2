"""Reading an uploaded or local file with the loaders' bounds, for the other importers (bank statements,
remittance advice) without importing the ledger loaders themselves (no import cycle with ``load bank``)."""
from __future__ import annotations

from analytics.loaders._source import Limits, Source, read_source

__all__ = ["Limits", "Source", "read_source"]
