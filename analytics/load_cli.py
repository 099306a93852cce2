"""``python -m analytics load FORMAT PATH``: ledger exports (:mod:`analytics.loaders`) and bank statements
(:mod:`analytics.bank`, format ``bank``), in one command without the two packages importing each other."""
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
