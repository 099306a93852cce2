"""Customer 360 records, also through the CLI (`python -m analytics customer ID`)."""
import datetime as dt
import json

import sqlalchemy as sa

from analytics import accounts, cli, db
from analytics.ledger import LedgerFilter, open_items

AS_OF = dt.date(2026, 10, 31)


def _busiest_customer(conn) -> str:
    return conn.execute(sa.text("SELECT customer_id FROM invoices GROUP BY customer_id "
                                "ORDER BY count(*) DESC, customer_id LIMIT 1")).scalar()


def test_account_open_items_match_the_ledger(small_ledger_url):
    engine = db.make_engine(small_ledger_url)
    with engine.connect() as conn:
        cid = _busiest_customer(conn)
        acct = accounts.account(conn, cid, AS_OF)
        oi = open_items(AS_OF, LedgerFilter(customers=(cid,)))
        expected = conn.execute(sa.select(sa.func.sum(oi.c.open_cents))).scalar() or 0
    assert acct["profile"]["id"] == cid
    assert int(acct["items"]["open_cents"].sum()) == int(expected)
    assert len(acct["timeline"]) >= len(acct["items"])
    engine.dispose()


def test_cli_prints_the_account_and_refuses_unknown_customers(small_ledger_url, capsys):
    engine = db.make_engine(small_ledger_url)
    with engine.connect() as conn:
        cid = _busiest_customer(conn)
    engine.dispose()
    assert cli.main(["customer", cid, "--db", small_ledger_url, "--as-of", "2026-10-31", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["id"] == cid and {"items", "receipts", "timeline"} <= set(out)
    assert cli.main(["customer", "no-such-customer", "--db", small_ledger_url]) == 2
    assert "does not exist" in capsys.readouterr().err
