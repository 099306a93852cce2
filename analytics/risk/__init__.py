"""Delinquency risk: account and invoice scores, payment-date prediction, explanations, model card.

Public API
----------
``score_accounts(conn, as_of, flt=NO_FILTER, model=None)``
    DataFrame[customer_id, customer_name, collector_id, currency, probability, expected_loss_cents, band,
    reasons, open_cents, overdue_cents, max_days_past_due, ...] ranked by expected loss.
``score_invoices(conn, as_of, flt=NO_FILTER, model=None)``
    Open invoices with P(paid > T days late or never) and predicted payment date with an interval.
``train(conn, as_of, late_days=30)`` -> :class:`RiskModel`; ``save_model`` / ``load_model``.
``evaluate(conn, split_date=None, late_days=None)`` -> model card figures (dict); T chosen so the test set has 30+ events of each class, or flagged.
``BANDS`` / ``band(p)`` — risk bands: low < 10 % <= medium < 30 % <= high < 60 % <= critical.

CLI
---
``python -m analytics risk --as-of 2026-10-31 --json``          per-account scores
``python -m analytics risk invoices --as-of 2026-10-31 --json`` per-invoice scores and payment dates
``python -m analytics risk review --json``                      accounts flagged for credit review
``python -m analytics risk evaluate --json``                    model card figures
``python -m analytics risk train --as-of 2026-10-31 --out data/models/risk.model``
``python -m analytics risk policy-backtest [--start D] [--capacity 2] [--replays 5]`` ranking rules compared
on a ledger generated with ``--contact-effects`` (:mod:`analytics.risk.policy`)
"""
from __future__ import annotations

import argparse
import json
import sys

from analytics.cli_support import date_arg
from analytics.errors import UserError
from analytics.ledger import parse_date, to_units
from analytics.risk.card import evaluate
from analytics.risk.features import ACCOUNT_FEATURES, INVOICE_FEATURES
from analytics.risk.models import (BANDS, SCHEMA_VERSION, DaysToPayRegressor, DelinquencyClassifier,
                                   HeuristicRiskScorer, RiskModel, band)
from analytics.risk.persistence import DEFAULT_MODEL_PATH, load_model, save_model
from analytics.risk.scoring import DEFAULT_LATE_DAYS, MAX_TRAINING_ROWS, MODEL_CACHE, ModelCache, credit_review, score_accounts, score_invoices, train

__all__ = [
    "ACCOUNT_FEATURES", "INVOICE_FEATURES", "BANDS", "SCHEMA_VERSION", "DaysToPayRegressor", "DelinquencyClassifier",
    "HeuristicRiskScorer", "RiskModel", "band", "DEFAULT_MODEL_PATH", "load_model", "save_model", "MODEL_CACHE",
    "ModelCache", "credit_review", "score_accounts", "score_invoices", "train", "evaluate", "configure_cli", "money",
]


#: Cents -> currency units rounded half up to 2 decimals (for JSON/display): :func:`analytics.ledger.to_units`.
money = to_units
_date = parse_date


def _max_rows(text: str) -> int | None:
    """``--max-training-rows``: a positive integer, or ``none`` for no bound."""
    if text.strip().lower() in ("none", "all"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of rows (or 'none')")
    return value


def configure_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics risk [score|invoices|evaluate|train]``."""
    from analytics.cli_support import add_filter_arguments

    parser.add_argument("action", nargs="?", default="score",
                        choices=("score", "invoices", "review", "evaluate", "train", "policy-backtest"),
                        help="score accounts (default), score open invoices, list the accounts flagged for credit "
                             "review (the Risk page), print the model card, train+save, or replay ranking rules "
                             "on a ledger generated with --contact-effects")
    add_filter_arguments(parser, as_of_help="scoring date YYYY-MM-DD (default: the ledger's latest invoice or "
                                            "receipt date); the filters select the accounts scored")
    parser.add_argument("--model", default=None,
                        help="saved model file (default: train on the ledger's own history before --as-of)")
    parser.add_argument("--out", default=str(DEFAULT_MODEL_PATH), help="where `risk train` writes the model")
    parser.add_argument("--late-days", type=int, default=None,
                        help="T in 'paid more than T days late' (default 30; for `evaluate` the largest of 30, 15, "
                             "7, 0 whose test set has 30+ late and 30+ on-time invoices)")
    parser.add_argument("--split-date", type=date_arg, default=None, help="evaluate: train before, test on/after")
    parser.add_argument("--limit", type=int, default=None, help="print only the first N rows")
    parser.add_argument("--max-training-rows", type=_max_rows, default=MAX_TRAINING_ROWS,
                        help=f"train on at most N points per model (default {MAX_TRAINING_ROWS:,}; 'none' = all)")
    parser.add_argument("--start", type=date_arg, default=None,
                        help="policy-backtest: first day of the replayed window (default: 30 days before the end)")
    parser.add_argument("--capacity", type=int, default=2,
                        help="policy-backtest: contacts per collector per business day (default 2)")
    parser.add_argument("--replays", type=int, default=5,
                        help="policy-backtest: sets of simulated responses averaged (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=_run)


def _run(args) -> int:
    from analytics.cli_support import as_of as cli_as_of
    from analytics.cli_support import check_filter, ledger_filter, open_engine, text_table

    engine = open_engine(args)
    flt = ledger_filter(args)
    with engine.connect() as conn:
        check_filter(conn, flt)
        as_of = cli_as_of(conn, args)
    if args.late_days is not None and args.late_days < 0:
        raise UserError("--late-days must be 0 or more")
    if args.action == "evaluate":
        card = evaluate(engine, args.split_date, late_days=args.late_days)
        for warning in card["warnings"]:
            print(f"WARNING: {warning}", file=sys.stderr)
        if args.json:
            print(json.dumps(card, indent=2))
        else:
            inv = card["invoice"]
            chosen = " (chosen: 30+ events of each class)" if "threshold" in inv else ""
            print(f"data end {card['data_end']}; split {inv['split_date']}; T = {inv['late_days']} days{chosen}")
            for name in ("model", "hgb", "logistic", "baseline"):
                if name in inv:
                    print(f"  invoice {name:9s} ROC AUC {inv[name]['roc_auc']}  Brier {inv[name]['brier']}")
            if "days_to_pay" in inv:
                d = inv["days_to_pay"]
                print(f"  days to pay MAE model {d['mae_model']}  baseline {d['mae_baseline']}; "
                      f"{d['interval']} interval covers {d['interval_coverage']:.1%}")
            acc = card["account"]
            if "model" in acc:
                print(f"  account model ROC AUC {acc['model']['roc_auc']}  baseline {acc['baseline']['roc_auc']}")
                ew = acc["early_warning"]
                print(f"  early warning (worst item <= {ew['max_days_past_due']} dpd, {ew['n_test']} snapshots) "
                      f"ROC AUC {ew['model']['roc_auc']}  baseline {ew['baseline']['roc_auc']}")
            if card["truth"]:
                print(f"  precision at top {card['truth']['top_k']}: {card['truth']['precision_at_top']}")
        for warning in card["warnings"]:
            print(f"WARNING: {warning}", file=sys.stderr)
        return 3 if card["warnings"] else 0
    if args.late_days is None:
        args.late_days = DEFAULT_LATE_DAYS
    model = load_model(args.model) if args.model else None
    if args.action == "policy-backtest":
        from analytics.risk.policy import format_table, policy_backtest

        result = policy_backtest(engine, args.start, capacity=args.capacity, replays=args.replays, model=model,
                                 flt=flt)
        print(json.dumps(result, indent=2) if args.json else format_table(result))
        return 0
    if args.action == "train":
        model = train(engine, as_of, late_days=args.late_days, max_training_rows=args.max_training_rows)
        path = save_model(model, args.out)
        info = {"path": str(path), "trained_as_of": as_of.isoformat(), "method": model.method,
                "n_train": model.n_train, "schema_version": model.schema_version}
        print(json.dumps(info, indent=2) if args.json else f"saved {path} ({model.method})")
        return 0
    if model is None:
        model = train(engine, as_of, late_days=args.late_days, max_training_rows=args.max_training_rows)
    if args.action == "invoices":
        frame = score_invoices(engine, as_of, flt, model=model)
        if args.limit:
            frame = frame.head(args.limit)
        rows = [{"invoice_id": r.invoice_id, "customer_id": r.customer_id, "open_amount": money(r.open_cents),
                 "days_past_due": int(r.days_past_due), "probability_late": float(r.probability_late),
                 "pay_date": r.pay_date.isoformat(), "pay_date_low": r.pay_date_low.isoformat(),
                 "pay_date_high": r.pay_date_high.isoformat()} for r in frame.itertuples()]
    else:
        frame = score_accounts(engine, as_of, flt, model=model)
        if args.action == "review":
            frame = credit_review(frame)
        if args.limit:
            frame = frame.head(args.limit)
        rows = [{"customer_id": r.customer_id, "probability": float(r.probability),
                 "expected_loss": money(r.expected_loss_cents), "band": r.band, "reasons": r.reasons,
                 "open_amount": money(r.open_cents), "max_days_past_due": int(r.max_days_past_due),
                 **({"flag": r.flag} if args.action == "review" else {})}
                for r in frame.itertuples()]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.action == "invoices":
        print(text_table(frame.assign(p_pct=frame["probability_late"] * 100),
                         {"invoice_id": "Document", "customer_id": "Customer", "open_cents": "Open",
                                 "days_past_due": "DPD", "p_pct": "P(late) %", "pay_date": "Pay date",
                                 "pay_date_low": "Earliest", "pay_date_high": "Latest"}))
    else:
        print(text_table(frame.assign(p_pct=frame["probability"] * 100),
                         {"customer_id": "Customer", "band": "Band", "p_pct": "P %",
                                 "expected_loss_cents": "Expected loss", "open_cents": "Open",
                                 "max_days_past_due": "Worst DPD",
                                 **({"flag": "Flag"} if args.action == "review" else {}), "reasons": "Reasons"}))
    return 0
