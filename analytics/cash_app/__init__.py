"""Cash application and month-end reconciliation.

* :mod:`~analytics.cash_app.matching` — :func:`propose` (pure) matches unapplied receipts to open
  items by remittance reference (exact and fuzzy), exact amount, bounded subset-sum, short payment
  and oldest-first, each line with a confidence and the rule that produced it.
* :mod:`~analytics.cash_app.posting` — :func:`run_matching` (writes proposals, auto-applies the
  confident ones), :func:`apply` / :func:`unapply` (split = several allocations), and
  :func:`accept_proposals` / :func:`reject_proposal`; validated, permission-checked, audited, one
  transaction each.
* :mod:`~analytics.cash_app.reports` — unapplied cash and its aging, KPIs, :func:`refund_package`,
  month-end :func:`rollforward` tied to the open items to the cent.
* :mod:`~analytics.cash_app.evaluation` — :func:`evaluate_matching` against ``receipt_truth``.

CLI::

    python -m analytics cashapp match --db URL --json [--apply --threshold 0.95]
    python -m analytics cashapp kpis|queue|unapplied|refunds [--as-of D] [filters] [--json|--csv]
    python -m analytics rollforward --db URL --from 2025-01 --to 2025-12 --json
"""
from __future__ import annotations

import argparse
import json
import sys

from analytics.cash_app.evaluation import evaluate_matching
from analytics.cash_app.matching import default_as_of, propose, remittance_tokens
from analytics.cash_app.posting import (accept_proposal, accept_proposals, apply, item_open_cents,
                                        receipt_unapplied_cents, reject_proposal, reject_proposals, run_matching,
                                        unapply)
from analytics.cash_app.reports import (UNAPPLIED_BUCKETS, cash_app_kpis, ledger_integrity, pending_proposals,
                                        refund_package, rollforward, ties_out, unapplied_aging, unapplied_cash)
from analytics.cash_app.reports import revalued_rollforward  # fx: roll-forward in a reporting currency
from analytics.ledger import to_units
from analytics import cli_support as cs
from analytics.cli_support import date_arg, month_arg

__all__ = [
    "UNAPPLIED_BUCKETS", "accept_proposal", "accept_proposals", "apply", "cash_app_kpis", "default_as_of",
    "evaluate_matching", "item_open_cents", "ledger_integrity", "pending_proposals", "propose", "receipt_unapplied_cents",
    "refund_package", "reject_proposal", "reject_proposals", "remittance_tokens", "revalued_rollforward",
    "rollforward", "run_matching",
    "ties_out", "unapplied_aging", "unapplied_cash", "unapply",
]


_units = to_units


def configure_cashapp_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics cashapp match``."""
    sub = parser.add_subparsers(dest="cashapp_command", metavar="ACTION")
    p = sub.add_parser("match", help="propose receipt-to-invoice matches (and apply the confident ones)")
    p.add_argument("--db", default=argparse.SUPPRESS, help="SQLAlchemy URL (default: $AR_DB_URL or data/demo.db)")
    p.add_argument("--as-of", type=date_arg, default=None, help="date of the run (default: the ledger's last invoice or receipt date)")
    p.add_argument("--apply", action="store_true",
                   help="write the proposals and auto-apply lines at or above --threshold (as user 'cli')")
    p.add_argument("--threshold", type=float, default=0.95, help="auto-apply confidence threshold (default 0.95)")
    p.add_argument("--user", default="cli", help="user name recorded in the audit log with --apply")
    p.add_argument("--limit", type=int, default=50, help="proposal lines to print (default 50; 0 = all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_run_match)
    for name, help_, period in (
            ("kpis", "the page's figures for a period (default: the last 30 days)", True),
            ("queue", "proposals waiting for review", False),
            ("unapplied", "unapplied cash at the as-of date: aging, and the receipts with --table receipts", False),
            ("refunds", "the refund package: customers holding a credit balance", False)):
        r = sub.add_parser(name, help=help_, description=help_)
        r.add_argument("--db", default=argparse.SUPPRESS, help="SQLAlchemy URL (default: $AR_DB_URL or data/demo.db)")
        cs.add_filter_arguments(r, period=period)
        if name == "unapplied":
            r.add_argument("--table", choices=("aging", "receipts"), default="aging",
                           help="aging (default) or one row per receipt")
        cs.add_output_arguments(r)
        r.set_defaults(run=_run_report, cashapp_command=name)
    parser.set_defaults(run=lambda args: (parser.print_help(), 2)[1])


def _run_report(args: argparse.Namespace) -> int:
    """``cashapp kpis|queue|unapplied|refunds``: what the Cash application page lists."""
    import pandas as pd

    flt = cs.ledger_filter(args)
    name = args.cashapp_command

    def compute(conn):
        cs.check_filter(conn, flt)
        day = cs.as_of(conn, args)
        if name == "kpis":
            start, end = cs.period(args, day, days=30)
            return day, (start, end), cash_app_kpis(conn, start, end, flt)
        if name == "queue":
            return day, None, pending_proposals(conn, flt)
        if name == "refunds":
            return day, None, refund_package(conn, None, day, flt)
        if args.table == "receipts":
            return day, None, unapplied_cash(conn, day, flt)
        return day, None, unapplied_aging(conn, day, flt)

    day, span, result = cs.run_on_ledger(args, compute)
    if name == "kpis":
        table = pd.DataFrame([result])
        row = cs.records(table)[0]
        payload = {"as_of": day.isoformat(), "from": span[0].isoformat(), "to": span[1].isoformat(), **row}
        cur = ", ".join(flt.currencies) or "all currencies"

        def shown(key, value) -> str:
            if value is None:
                return "-"
            if key.endswith("_cents"):
                return cs.money(value)
            return f"{value:.1%}" if key.endswith(("_rate", "_share")) else f"{value:,}"

        return cs.emit(args, payload, table, lambda: f"Cash application {span[0]} .. {span[1]} ({cur})\n\n"
                       + "\n".join(f"{k.removesuffix('_cents').replace('_', ' '):<28}{shown(k, v):>16}"
                                    for k, v in result.items() if k not in ("start", "end")))
    payload = {"as_of": day.isoformat(), name: cs.records(result)}
    columns = {c: c.removesuffix("_cents").replace("_", " ").capitalize() for c in result.columns
               if c not in ("bucket_order", "source_receipts", "source_credit_memos", "remittance_ref")}
    return cs.emit(args, payload, result, lambda: f"Cash application: {name} as of {day}\n\n"
                   + cs.text_table(result, columns))


def _run_match(args: argparse.Namespace) -> int:
    from analytics import db
    from analytics.auth import User
    from analytics.errors import UserError

    if not 0 < args.threshold:
        raise UserError(f"--threshold must be above 0, got {args.threshold}")
    engine = db.connect(args.db or db.default_url())
    try:
        with engine.connect() as conn:
            as_of = args.as_of or default_as_of(conn)
            props = propose(conn, as_of)
            figures = None
            try:
                has_truth = conn.execute(db.sa.select(db.sa.func.count()).select_from(
                    db.schema.receipt_truth)).scalar()
            except Exception:  # pragma: no cover - older databases
                has_truth = 0
            if has_truth:
                figures = evaluate_matching(conn, as_of, args.threshold)
        summary = None
        if args.apply:
            summary = run_matching(engine, User(args.user, "admin"), auto_threshold=args.threshold, as_of=as_of)
    finally:
        engine.dispose()
    shown = props if not args.limit else props.head(args.limit)
    lines = [{**r, "amount": _units(r["amount_cents"]), "deduction": _units(r["deduction_cents"]),
              "receipt_date": r["receipt_date"].isoformat()}
             for r in shown[["receipt_id", "customer_id", "invoice_id", "amount_cents", "deduction_cents",
                             "confidence", "rule", "receipt_date"]].to_dict("records")]
    for ln in lines:
        del ln["amount_cents"], ln["deduction_cents"]
    auto = props["confidence"] >= args.threshold
    out = {"as_of": as_of.isoformat(), "receipts": int(props["receipt_id"].nunique()),
           "proposals": int(len(props)), "auto_eligible": int(auto.sum()),
           "auto_eligible_amount": _units(int(props.loc[auto, "amount_cents"].sum())),
           "by_rule": {k: int(v) for k, v in props["rule"].value_counts().sort_index().items()},
           "quality": figures, "applied": summary, "lines": lines}
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print(f"{out['proposals']} proposals for {out['receipts']} receipts as of {out['as_of']}; "
              f"{out['auto_eligible']} at or above {args.threshold}")
        for ln in lines:
            print(f"  {ln['receipt_id']} -> {ln['invoice_id']}  {ln['amount']:>14,.2f}  {ln['confidence']:.2f}  "
                  f"{ln['rule']}")
        if figures:
            print(f"precision {figures['precision']}, recall {figures['recall']}, "
                  f"auto precision {figures['auto_precision']} (against receipt_truth)")
        if summary:
            print(f"applied {summary['auto_applied']} lines automatically, queued {summary['queued']}")
    return 0


def configure_rollforward_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics rollforward``."""
    parser.add_argument("--from", dest="start", type=month_arg, required=True, help="first month (YYYY-MM)")
    parser.add_argument("--to", dest="end", type=month_arg, required=True, help="last month (YYYY-MM)")
    parser.add_argument("--currency", action="append", default=[], help="only this currency (repeatable)")
    parser.add_argument("--report-currency", dest="report_currency", type=str.upper, default=None, metavar="CUR",
                        help="in CUR at month-end rates, with the unrealised FX gain/loss line (analytics.fx)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=_run_rollforward)


def _run_rollforward(args: argparse.Namespace) -> int:
    from analytics import db
    from analytics.ledger import LedgerFilter

    from analytics.errors import LedgerIntegrityError

    engine = db.connect(args.db or db.default_url())
    try:
        with engine.connect() as conn:
            flt = LedgerFilter(currencies=tuple(args.currency))
            frame = (revalued_rollforward(conn, args.start, args.end, args.report_currency, flt)
                     if getattr(args, "report_currency", None) else rollforward(conn, args.start, args.end, flt))
    except LedgerIntegrityError as exc:
        print(f"DOES NOT TIE OUT: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"from": args.start, "to": args.end, "ties_out": False, "problems": exc.problems},
                             indent=2))
        return 1
    finally:
        engine.dispose()
    ok = ties_out(frame)
    if args.json:
        rows = []
        for r in frame.to_dict("records"):
            row = {"month": r["month"].isoformat(), "currency": r["currency"]}
            if "rate_date" in r:  # --report-currency: amounts in it, at the rate of rate_date
                row.update(report_currency=args.report_currency, rate_date=r["rate_date"].isoformat())
            row.update({k[: -len("_cents")]: _units(v) for k, v in r.items() if k.endswith("_cents")})
            rows.append(row)
        print(json.dumps({"from": args.start, "to": args.end, "ties_out": ok, "months": rows}, indent=2))
    else:
        for r in frame.itertuples(index=False):
            print(f"{r.month:%Y-%m} {r.currency}  opening {r.opening_cents / 100:>16,.2f}  closing "
                  f"{r.closing_cents / 100:>16,.2f}  open items {r.open_items_cents / 100:>16,.2f}  "
                  f"difference {r.difference_cents / 100:,.2f}"
                  + (f"  FX gain/loss {r.fx_revaluation_cents / 100:,.2f} {args.report_currency}"
                     if hasattr(r, "fx_revaluation_cents") else ""))
        print("ties out" if ok else "DOES NOT TIE OUT")
    return 0 if ok else 1
