"""Errors a user can act on. The CLI prints them as one line; the dashboard shows them in an error box."""
from __future__ import annotations

import dataclasses


class UserError(Exception):
    """Something the user can fix: a bad file, an unknown column, a date in the past, a missing model."""


@dataclasses.dataclass(frozen=True)
class RowError:
    """One problem in an input file: 1-based ``row`` as a spreadsheet shows it (header = row 1)."""

    row: int
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column!r} ({self.value!r}): {self.reason}"


class ValidationFailed(UserError):
    """An input was refused; ``errors`` lists every bad row. Nothing was written."""

    def __init__(self, errors: list[RowError], source: str = "input"):
        self.errors = list(errors)
        shown = "; ".join(str(e) for e in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(f"{source}: {len(self.errors)} bad row(s), nothing was loaded: {shown}{more}")


class ReadOnlyDatabase(UserError):
    """A write was refused because the database is read-only (``AR_DB_READONLY``, a DuckDB file opened
    ``read_only``). Nothing was written."""


class LedgerIntegrityError(UserError):
    """The ledger holds a state money cannot be in (a receipt applied beyond its amount, an item settled
    beyond its amount); ``problems`` names every document. Reports built on it would be wrong."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        shown = "; ".join(self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(f"the ledger is not consistent, so the roll-forward cannot be trusted: {shown}{more}. "
                         "Reverse the extra postings (unapply, or an adjustment) and run it again.")


class DatabaseBusy(UserError):
    """The embedded ledger file stayed locked by another program (an import, a generation, another
    command) for longer than the wait allowed (``AR_DB_LOCK_WAIT``). Nothing was read or written; try again."""
