"""Command line: ``python -m analytics COMMAND ...`` — every page's figures and lists, and the data jobs.

Each command lives in the module that does the work; that module exposes
``configure_cli(parser)`` (or ``configure_<command>_cli``, or a ``CLI_COMMANDS`` dict of command -> such a
function when it holds several), which adds its arguments and sets ``parser.set_defaults(run=fn)`` where
``fn(args) -> int`` prints its result and returns the exit code. Only the module of the command
being run is imported, so ``python -m analytics --help`` is fast.

Every command takes ``--db URL`` (default ``$AR_DB_URL`` or the embedded demo database) and
``--read-only`` (the same as ``AR_DB_READONLY=1``: no migration, the schema is checked instead, and
commands that write refuse with "this database is read-only").
Errors the user can fix (:class:`analytics.errors.UserError`, and a malformed option value) print a
one-line message and exit 2, never a traceback. Options shared by several commands (dates, the sidebar
filters, ``--json`` / ``--csv`` / ``--out``) are parsed by :mod:`analytics.cli_support`; the commands that
print a dashboard page live in :mod:`analytics.page_commands`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from analytics.errors import UserError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("analytics.generator", "Data: generate a seeded synthetic ledger into a database"),
    "load": ("analytics.load_cli", "Data: load an AR export (ibm, highradius, csv, excel) or a bank statement (bank)"),
    "kpis": ("analytics.page_commands", "Overview: the KPI set as of a date"),
    "aging": ("analytics.page_commands", "Aging: open amount by bucket, customer or invoice"),
    "sla": ("analytics.page_commands", "SLA: status of each target and the accounts behind each breach"),
    "collectors": ("analytics.page_commands", "Collectors: leaderboard for a period, or the monthly trend"),
    "disputes": ("analytics.page_commands", "Disputes: figures for a period, open disputes, by reason"),
    "promises": ("analytics.page_commands", "Promises to pay: figures for a period, due or broken promises"),
    "dunning": ("analytics.page_commands", "Dunning: accounts due a letter, a letter draft, the letters' zip; `dunning run` sends the day's run"),
    "risk": ("analytics.risk", "Risk: account or invoice scores, `review` (credit review), `evaluate` (model card), `train`"),
    "forecast": ("analytics.forecast", "Cash forecast: 13-week receipts forecast; `forecast backtest` prints WAPE"),
    "cashapp": ("analytics.cash_app", "Cash application: `match`, `kpis`, `queue`, `unapplied`, `refunds`"),
    "rollforward": ("analytics.cash_app", "Cash application: month-end AR roll-forward"),
    "worklist": ("analytics.page_commands", "Worklist: accounts ranked by expected loss"),
    "statement": ("analytics.statements", "Dunning: customer statement of account as PDF: `--customer ID` or `--all` (zip)"),
    "customer": ("analytics.accounts", "Customer 360: one account as of a date: items, payments, disputes, promises, activity"),
    "users": ("analytics.auth", "Data: manage dashboard users: `users add NAME --role ROLE`"),
    "export": ("analytics.backup", "Data: export the whole ledger and audit log to a file"),
    "import": ("analytics.backup", "Data: import a ledger exported with `export`"),
    "fx": ("analytics.fx", "Currencies: `fx rate GBP EUR --on DATE` (latest rate on or before it); `fx demo-rates` (synthetic)"),
    "bank": ("analytics.bank", "Cash application: bank statements: `export` (write one), `statements` (hit rate), `suspense`, `remittance`"),
    "summaries": ("analytics.load_cli", "Data: the derived settlement summary: `summaries check` compares it with the ledger, `summaries rebuild` recomputes it"),
    "audit": ("analytics.audit", "Data: check the audit log's hash chain: `audit verify` names the first broken row"),
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
            configure = (getattr(mod, "CLI_COMMANDS", {}).get(name) or getattr(mod, f"configure_{name}_cli", None)
                         or mod.configure_cli)
            configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (message already printed) or --help: return its code, don't raise
        return exc.code if isinstance(exc.code, int) else 2
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
