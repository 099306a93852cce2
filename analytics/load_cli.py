"""Data commands that span packages.

* ``python -m analytics load FORMAT PATH``: ledger exports (:mod:`analytics.loaders`) and bank statements
  (:mod:`analytics.bank`, format ``bank``), in one command without the two packages importing each other.
* ``python -m analytics summaries check|rebuild``: the derived settlement summary (:mod:`analytics.summaries`)
  compared with a full recomputation (:func:`analytics.ledger.summary_differences`) or rebuilt.
"""
from __future__ import annotations

import argparse

from analytics import loaders


def configure_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics load`` (the loaders' own, ``bank`` among the formats)."""
    loaders.configure_cli(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    """Dispatch to the bank statement loader or the ledger loaders; returns the exit code.

    Example
    -------
    >>> run(argparse.Namespace(format="bank", path="s.xml", db="sqlite:///x.db", json=False))  # doctest: +SKIP
    0
    """
    if args.format == "bank":
        from analytics.bank import run_load

        return run_load(args)
    return loaders.run_cli(args)


def run_summaries(args) -> int:
    """``summaries rebuild`` (exit 0) or ``summaries check`` (exit 0 when the summary matches a full
    recomputation, 1 naming the first items that differ)."""
    from analytics import db, summaries
    from analytics.cli_support import open_engine
    from analytics.ledger import summary_differences

    engine = open_engine(args)
    if args.action == "rebuild":
        db.require_writable(engine, "rebuild the settlement summary")
        with db.bulk_write(engine) as conn:
            n = summaries.rebuild(conn)
            db.bump_ledger_version(conn)  # cached money figures are recomputed from the rebuilt summary
        print(f"settlement summary rebuilt: {n:,} items")
        return 0
    with engine.connect() as conn:
        wrong = summary_differences(conn)
    if wrong.empty:
        print("settlement summary: matches a full recomputation")
        return 0
    print(f"settlement summary: {len(wrong):,} items differ from a full recomputation "
          f"(run `python -m analytics summaries rebuild`):")
    print(wrong.head(20).to_string(index=False))
    return 1


def configure_summaries_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics summaries``."""
    parser.add_argument("action", choices=("rebuild", "check"),
                        help="rebuild: recompute the derived settlement summary; check: compare it with a full "
                             "recomputation (exit 1 when they differ)")
    parser.set_defaults(run=run_summaries)


CLI_COMMANDS = {"load": configure_cli, "summaries": configure_summaries_cli}
