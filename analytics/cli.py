"""Command line: ``python -m analytics COMMAND ...`` — everything the dashboard can do.

Each command lives in the module that does the work; that module exposes
``configure_cli(parser)``, which adds its arguments and sets ``parser.set_defaults(run=fn)`` where
``fn(args) -> int`` prints its result and returns the exit code. Only the module of the command
being run is imported, so ``python -m analytics --help`` is fast.

Every command takes ``--db URL`` (default ``$AR_DB_URL`` or the embedded demo database) and
``--read-only`` (the same as ``AR_DB_READONLY=1``: no migration, the schema is checked instead, and
commands that write refuse with "this database is read-only").
Errors the user can fix (:class:`analytics.errors.UserError`) print a one-line message and exit 2,
never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from analytics.errors import UserError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("analytics.generator", "generate a seeded synthetic ledger into a database"),
    "load": ("analytics.loaders", "load an AR export (ibm, highradius, csv, excel) into a database"),
    "kpis": ("analytics.kpis", "print the KPI set as of a date"),
    "risk": ("analytics.risk", "score accounts for delinquency risk; `risk evaluate` prints the model card"),
    "forecast": ("analytics.forecast", "13-week cash-receipts forecast; `forecast backtest` prints WAPE"),
    "cashapp": ("analytics.cash_app", "cash application: `cashapp match` proposes receipt-to-invoice matches"),
    "rollforward": ("analytics.cash_app", "month-end AR roll-forward"),
    "worklist": ("analytics.worklist", "collector worklist ranked by expected loss"),
    "dunning": ("analytics.dunning_runs", "dunning: `dunning run --as-of D [--dry-run]` runs the procedure; `dunning procedure`"),
    "statement": ("analytics.statements", "customer statement of account as PDF: `--customer ID` or `--all` (zip)"),
    "customer": ("analytics.accounts", "one account as of a date: items, payments, disputes, promises, activity"),
    "users": ("analytics.auth", "manage dashboard users: `users add NAME --role ROLE`"),
    "export": ("analytics.backup", "export the whole ledger and audit log to a file"),
    "import": ("analytics.backup", "import a ledger exported with `export`"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analytics", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            p.add_argument("--db", default=None, help="SQLAlchemy URL (default: $AR_DB_URL or data/demo.db)")
            p.add_argument("--read-only", action="store_true", dest="read_only",
                           help="use the database read-only: no migration, no writes (as AR_DB_READONLY=1)")
            mod = importlib.import_module(module)
            configure = getattr(mod, f"configure_{name}_cli", None) or mod.configure_cli
            configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0 if not argv or "-h" in argv or "--help" in argv else 2
    if getattr(args, "read_only", False):
        import os

        os.environ["AR_DB_READONLY"] = "1"  # read by analytics.db.connect / is_readonly in this process
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
