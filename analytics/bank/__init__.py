"""Bank statements: import (BAI2, MT940, camt.053), statement writer, suspense queue, remittance advice.

* :mod:`analytics.bank.parsers` — the three formats, read by libraries (``bai2``, ``mt-940``, ``pycamt``).
* :mod:`analytics.bank.loading` — credits become receipts, returns reverse them, each line once.
* :mod:`analytics.bank.writer` — the generator's receipts written as statements in each format.
* :mod:`analytics.bank.remittance` — a remittance advice (CSV / Excel) drives a receipt's split.

Commands: ``python -m analytics load bank FILE`` and ``python -m analytics bank export|statements|suspense|
remittance`` (``--help`` on each).
"""
from __future__ import annotations

import argparse


from analytics import cli_support as cs


def run_load(args) -> int:
    """``python -m analytics load bank FILE``: load a statement, print what it did (exit 0).

    Example
    -------
    >>> run_load(argparse.Namespace(path="s.xml", db="sqlite:///x.db", json=True))  # doctest: +SKIP
    0
    """
    import json

    from analytics import db
    from analytics.bank.loading import load_statement

    engine = db.connect(args.db or db.default_url())
    try:
        report = load_statement(engine, args.path)
    finally:
        engine.dispose()
    print(json.dumps({"status": "loaded", **report.to_dict()}, indent=2) if args.json else report.summary())
    return 0


def configure_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics bank``."""
    sub = parser.add_subparsers(dest="bank_command", metavar="ACTION", required=True)
    ex = sub.add_parser("export", help="write the ledger's receipts (or simulated payments) as a bank statement")
    ex.add_argument("--format", required=True, choices=("bai2", "mt940", "camt053"))
    ex.add_argument("--out", required=True, help="file to write")
    ex.add_argument("--from", dest="date_from", type=cs.date_arg, help="first receipt date (default: all)")
    ex.add_argument("--to", dest="date_to", type=cs.date_arg, help="last receipt date")
    ex.add_argument("--simulate", type=int, default=0, metavar="N",
                    help="instead: N new payments of open items, as customers would send them (for the demo)")
    ex.add_argument("--seed", type=int, default=7)
    ex.set_defaults(run=_run_export)
    st = sub.add_parser("statements", help="loaded statements with their hit rate (auto-applied, proposed, unmatched)")
    st.add_argument("--json", action="store_true")
    st.set_defaults(run=_run_statements)
    sq = sub.add_parser("suspense", help="the suspense queue: receipts whose payer is not identified, with their age")
    sq.add_argument("--as-of", dest="as_of", type=cs.date_arg)
    sq.add_argument("--json", action="store_true")
    sq.set_defaults(run=_run_suspense)
    ra = sub.add_parser("remittance", help="apply a remittance advice (CSV / Excel) to a receipt")
    ra.add_argument("path")
    ra.add_argument("--receipt", required=True, help="the receipt the advice explains")
    ra.add_argument("--date", type=cs.date_arg, help="applied date (default: the receipt's date)")
    ra.add_argument("--json", action="store_true")
    ra.set_defaults(run=_run_remittance)
    for p in (ex, st, sq, ra):  # `bank ACTION --db URL` as well as `bank --db URL ACTION`
        p.add_argument("--db", default=argparse.SUPPRESS, help="SQLAlchemy URL (default: $AR_DB_URL or data/demo.db)")


def _print(obj, as_json: bool) -> None:
    """A frame as JSON rows (``x_cents`` -> ``x`` in units) or a table with money as ``USD 1,234.56``."""
    import json

    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        if as_json:
            print(json.dumps(cs.records(obj), indent=2))
            return
        shown = obj.copy()
        for col in [c for c in obj.columns if str(c).endswith("_cents")]:
            shown[col] = [cs.money(v, c) for v, c in zip(obj[col], obj.get("currency", [None] * len(obj)))]
        shown.columns = [str(c)[: -len("_cents")] if str(c).endswith("_cents") else c for c in shown.columns]
        shown = shown.astype(object).where(shown.notna(), "")
        print(shown.to_string(index=False) if len(shown) else "(none)")
        return
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if not k.endswith("_cents")} if not as_json else \
            {(k[:-6] if k.endswith("_cents") else k): (cs.units(v) if k.endswith("_cents") else v)
             for k, v in obj.items()}
        print(json.dumps(obj, indent=2, default=str) if as_json else obj.get("message", obj))
        return
    print(obj)


def _run_export(args) -> int:
    from analytics import db
    from analytics.bank.writer import export_statement

    engine = db.connect(args.db or db.default_url())
    try:
        n = export_statement(engine, args.format, args.out, date_from=args.date_from, date_to=args.date_to,
                             simulate=args.simulate, seed=args.seed)
    finally:
        engine.dispose()
    print(f"wrote {n} line(s) to {args.out} ({args.format})")
    return 0


def _run_statements(args) -> int:
    from analytics import db
    from analytics.cash_app.evaluation import statement_hit_rates

    engine = db.connect(args.db or db.default_url())
    with engine.connect() as conn:
        frame = statement_hit_rates(conn)
    engine.dispose()
    _print(frame, getattr(args, "json", False))
    return 0


def _run_suspense(args) -> int:
    from analytics import db
    from analytics.cash_app.matching import suspense_queue

    engine = db.connect(args.db or db.default_url())
    with engine.connect() as conn:
        frame = suspense_queue(conn, args.as_of)
    engine.dispose()
    _print(frame, args.json)
    return 0


def _run_remittance(args) -> int:
    from analytics import db
    from analytics.auth import User
    from analytics.bank.remittance import apply_advice

    engine = db.connect(args.db or db.default_url())
    try:
        result = apply_advice(engine, User("cli", "finance"), args.receipt, args.path, applied_date=args.date)
    finally:
        engine.dispose()
    _print(result, args.json)
    return 0


__all__ = ["run_load", "configure_cli"]
