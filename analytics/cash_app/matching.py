"""Cash-application matching engine: which open items does each unapplied receipt pay?

For every receipt with unapplied cash (amount less its applications dated on or before the as-of
date) the engine proposes allocations ``receipt -> invoice`` with a **confidence** in [0, 1] and the
**rule** that produced them. Rules, strongest first:

``reference``
    An invoice number found in the remittance text matches one of the customer's documents exactly
    after normalisation (digits only, leading zeros dropped: ``INV-0001234``, ``INV 0001234`` and
    ``1234`` are the same number).
``reference_fuzzy``
    A number in the text is one edit away (RapidFuzz optimal-string-alignment distance 1: a typo, a
    missing/extra digit or two transposed digits) from exactly one open item of the customer, and
    no document of the customer matches it exactly.
``exact_amount``
    The remaining amount equals the open amount of exactly one open item of the customer.
``subset_sum``
    The remaining amount equals the sum of 2 to 4 open items among the customer's 20 oldest open
    items (bounded search: at most ``C(20,2)+C(20,3)+C(20,4)`` combinations, via pair sums).
``short_pay``
    The remaining amount is below one open item's amount by at most 10 % (a deduction); the
    difference stays open on the item as the deduction to chase.
``oldest_first``
    Last resort: the remaining amount is spread over the customer's oldest open items by due date.

A receipt without a customer (unidentified payer, e.g. a bank statement line) is first identified
from the bank line: its **payer account** when that account already paid one customer (learned from
past matches: a receipt with the account whose customer is known or whose cash went to one customer's
items), else its **payer name** when it equals one customer's name (case, punctuation and legal forms
such as Inc/LLC/Ltd/GmbH ignored). Otherwise it is identified from the invoice numbers in its
text (they must all belong to one customer); without numbers, a single open item in the receipt's
currency with exactly its amount is proposed at low confidence (``exact_amount_any_customer``).

Items are shared between receipts: reference rules run first for every receipt, amount rules then
take what is left, receipts oldest first. Amount left after every rule is an overpayment: it stays
unapplied and shows as a credit balance (:func:`analytics.cash_app.refund_package`).

Confidences (calibrated on generated ledgers against ``receipt_truth``; only rules measured at
>= 99 % precision reach the default auto-apply threshold of 0.95):

=====================================================  ==========
reference, referenced items tie to the receipt amount   0.99
reference, one item, receipt below its open amount      0.97
reference, receipt above the referenced items           0.97
reference_fuzzy, tie to the receipt amount              0.97
unidentified payer identified by reference and tie      0.96
reference, several items, receipt below their sum       0.70
reference_fuzzy otherwise                               0.85
exact_amount (unique / several candidates)              0.90 / 0.50
subset_sum (unique / several solutions)                 0.85 / 0.50
short_pay (unique / several candidates)                 0.75 / 0.50
oldest_first                                            0.30
exact_amount_any_customer                               0.50
=====================================================  ==========
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
from typing import Iterable

import pandas as pd
import sqlalchemy as sa
from rapidfuzz.distance import OSA

from analytics import schema
from analytics.ledger import as_date, is_returned, open_items
from analytics.ledger import default_as_of as ledger_default_as_of
from analytics.db import read_frame

rc = schema.receipts
ap = schema.applications
inv = schema.invoices

SUBSET_MAX_CANDIDATES = 20
SUBSET_MAX_ITEMS = 4
SHORT_PAY_TOLERANCE = 0.10
_TOKEN = re.compile(r"([A-Za-z]{1,4})?[\s\-#:]?(\d{2,})")

PROPOSAL_COLUMNS = ["receipt_id", "receipt_customer_id", "customer_id", "invoice_id", "amount_cents",
                    "confidence", "rule", "deduction_cents", "receipt_date", "receipt_amount_cents",
                    "unapplied_cents", "currency", "remittance_ref"]


def default_as_of(conn: sa.Connection) -> dt.date:
    """The default date of a matching run: the ledger's last business date
    (:func:`analytics.ledger.default_as_of`, the latest invoice or receipt date; today when empty).

    Example
    -------
    >>> default_as_of(conn)  # doctest: +SKIP
    datetime.date(2026, 10, 31)
    """
    return ledger_default_as_of(conn)


def unapplied_receipts_query(as_of: dt.date, every_return: bool = False) -> sa.Select:
    """Receipts dated <= ``as_of`` with their unapplied amount at ``as_of`` (> 0 only).

    Columns: ``receipt_id, customer_id, receipt_date, amount_cents, currency, remittance_ref,
    payer_name, payer_account, applied_cents, unapplied_cents``. Receipts a bank return reversed on or
    before ``as_of`` (:func:`analytics.ledger.is_returned`) are not unapplied cash: they are left out;
    with ``every_return`` also those returned later (the matcher and the suspense queue, which work on
    what is known now, never propose cash the bank already took back).

    Example
    -------
    >>> conn.execute(unapplied_receipts_query(dt.date(2026, 10, 31))).all()  # doctest: +SKIP
    """
    d = sa.literal(as_of, sa.Date)
    applied = (sa.select(ap.c.receipt_id, sa.func.sum(ap.c.amount_cents).label("applied_cents"))
               .where(ap.c.receipt_id.is_not(None), ap.c.applied_date <= d)
               .group_by(ap.c.receipt_id).subquery("applied"))
    applied_cents = sa.func.coalesce(applied.c.applied_cents, 0)
    return (sa.select(rc.c.id.label("receipt_id"), rc.c.customer_id, rc.c.receipt_date, rc.c.amount_cents,
                      rc.c.currency, rc.c.remittance_ref, rc.c.payer_name, rc.c.payer_account,
                      applied_cents.label("applied_cents"),
                      (rc.c.amount_cents - applied_cents).label("unapplied_cents"))
            .select_from(rc.outerjoin(applied, applied.c.receipt_id == rc.c.id))
            .where(rc.c.receipt_date <= d, rc.c.amount_cents - applied_cents > 0,
                   sa.not_(is_returned(rc.c.id, None if every_return else d))))


_LEGAL = re.compile(r"\b(inc|incorporated|llc|ltd|limited|gmbh|ag|sa|sas|bv|nv|plc|corp|corporation|co|company|"
                    r"the)\b")


def name_key(name: str | None) -> str:
    """A payer or customer name compared without case, punctuation and legal forms.

    Example
    -------
    >>> name_key("Globex Corporation, Inc."), name_key("GLOBEX")
    ('globex', 'globex')
    """
    text = re.sub(r"[^a-z0-9 ]+", " ", str(name or "").lower())
    return " ".join(_LEGAL.sub(" ", text).split())


def learned_payers(conn: sa.Connection) -> dict[str, str]:
    """Payer account -> customer, learned from receipts already identified.

    A receipt's customer is its ``customer_id`` or, for an unidentified receipt, the one customer whose
    items its cash went to (net of unapplies). An account that paid for several customers teaches
    nothing (left out).

    Returns
    -------
    dict
        ``{payer_account: customer_id}``.

    Example
    -------
    >>> learned_payers(conn)  # doctest: +SKIP
    {'DE89370400440532013000': 'C0001'}
    """
    net = (sa.select(ap.c.receipt_id, ap.c.invoice_id, sa.func.sum(ap.c.amount_cents).label("net"))
           .where(ap.c.receipt_id.is_not(None)).group_by(ap.c.receipt_id, ap.c.invoice_id).subquery("net"))
    via_cash = (sa.select(rc.c.payer_account, inv.c.customer_id)
                .select_from(rc.join(net, net.c.receipt_id == rc.c.id).join(inv, inv.c.id == net.c.invoice_id))
                .where(rc.c.payer_account.is_not(None), rc.c.customer_id.is_(None), net.c.net > 0))
    direct = sa.select(rc.c.payer_account, rc.c.customer_id).where(rc.c.payer_account.is_not(None),
                                                                  rc.c.customer_id.is_not(None))
    seen: dict[str, set[str]] = {}
    for q in (direct, via_cash):
        for account, customer in conn.execute(q.distinct()).all():
            seen.setdefault(account, set()).add(customer)
    return {a: next(iter(c)) for a, c in seen.items() if len(c) == 1}


def payer_by_name(conn: sa.Connection) -> dict[str, str]:
    """:func:`name_key` of each customer name -> customer id, for names no two customers share.

    Example
    -------
    >>> payer_by_name(conn).get("globex")  # doctest: +SKIP
    'C0001'
    """
    seen: dict[str, set[str]] = {}
    for cid, name in conn.execute(sa.select(schema.customers.c.id, schema.customers.c.name)).all():
        key = name_key(name)
        if key:
            seen.setdefault(key, set()).add(cid)
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}


def identify_payer(rec, accounts: dict[str, str], names: dict[str, str]) -> tuple[str | None, str | None]:
    """(customer, how) for an unidentified receipt from its bank line: ``account``, ``name`` or (None, None).

    Example
    -------
    >>> identify_payer(row, {"DE89370400440532013000": "C1"}, {})  # doctest: +SKIP
    ('C1', 'account')
    """
    account = getattr(rec, "payer_account", None)
    if account and account in accounts:
        return accounts[account], "account"
    key = name_key(getattr(rec, "payer_name", None))
    if key and key in names:
        return names[key], "name"
    return None, None


# ------------------------------------------------------------------------------------------------
# remittance text
# ------------------------------------------------------------------------------------------------
def doc_key(doc_id: str) -> str | None:
    """Normalised document number: the digits of the id without leading zeros (None if no digits).

    Example
    -------
    >>> doc_key("INV-0001234"), doc_key("1234")
    ('1234', '1234')
    """
    digits = "".join(ch for ch in str(doc_id) if ch.isdigit()).lstrip("0")
    return digits or None


def _prefix(doc_id: str) -> str:
    m = re.match(r"[A-Za-z]+", str(doc_id))
    return m.group(0).upper() if m else ""


def remittance_tokens(text: str | None) -> list[tuple[str, str]]:
    """Candidate document numbers in a remittance text: ``[(prefix, key), ...]`` in text order.

    The prefix (letters just before the digits) is only a hint: documents with the same prefix are
    preferred when a number matches several.

    Example
    -------
    >>> remittance_tokens("Payment for INV-0003458, inv 0003478; 3551")
    [('INV', '3458'), ('INV', '3478'), ('', '3551')]
    """
    if not text:
        return []
    out, seen = [], set()
    for m in _TOKEN.finditer(str(text)):
        key = m.group(2).lstrip("0")
        if not key:
            continue
        token = ((m.group(1) or "").upper(), key)
        if token not in seen:
            seen.add(token)
            out.append(token)
    return out


# ------------------------------------------------------------------------------------------------
# the engine
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Item:
    invoice_id: str
    customer_id: str
    currency: str
    due_date: dt.date
    invoice_date: dt.date
    avail: int  # open amount not yet taken by a proposal


class _Book:
    """Open items by customer and by normalised number, with the amount still available."""

    def __init__(self, items: pd.DataFrame, all_docs: pd.DataFrame):
        self.items: dict[str, _Item] = {}
        self.by_customer: dict[str, list[_Item]] = {}
        for r in items.itertuples(index=False):
            it = _Item(r.invoice_id, r.customer_id, r.currency, as_date(r.due_date), as_date(r.invoice_date),
                       int(r.open_cents))
            self.items[it.invoice_id] = it
            self.by_customer.setdefault(it.customer_id, []).append(it)
        for lst in self.by_customer.values():
            lst.sort(key=lambda i: (i.due_date, i.invoice_date, i.invoice_id))
        # every document (open or not) by key, to recognise numbers of already-settled items
        self.docs_by_key: dict[str, list[tuple[str, str, str]]] = {}
        for r in all_docs.itertuples(index=False):
            key = doc_key(r.id)
            if key:
                self.docs_by_key.setdefault(key, []).append((r.id, r.customer_id, _prefix(r.id)))

    def open_for(self, customer_id: str) -> list[_Item]:
        return [i for i in self.by_customer.get(customer_id, []) if i.avail > 0]


def _pick_docs(cands: list[tuple[str, str, str]], prefix: str) -> list[tuple[str, str, str]]:
    if prefix:
        same = [c for c in cands if c[2] == prefix]
        if same:
            return same
    return cands


def _resolve_references(book: _Book, tokens, customer_id: str | None):
    """Map remittance tokens to open items. Returns (customer_id, [(item, exact)], tokens_found)."""
    if customer_id is None:
        owners = set()
        for prefix, key in tokens:
            for doc_id, cust, _ in _pick_docs(book.docs_by_key.get(key, []), prefix):
                if doc_id in book.items:
                    owners.add(cust)
        if len(owners) != 1:
            return None, [], False
        customer_id = owners.pop()
    found: list[tuple[_Item, bool]] = []
    seen: set[str] = set()
    open_items_ = book.by_customer.get(customer_id, [])
    for prefix, key in tokens:
        exact = [c for c in _pick_docs(book.docs_by_key.get(key, []), prefix) if c[1] == customer_id]
        if exact:
            for doc_id, _, _ in exact[:1]:
                it = book.items.get(doc_id)
                if it is not None and it.avail > 0 and doc_id not in seen:
                    found.append((it, True))
                    seen.add(doc_id)
            continue
        if len(key) < 3:
            continue
        near = [it for it in open_items_ if it.avail > 0 and it.invoice_id not in seen
                and OSA.distance(key, doc_key(it.invoice_id) or "", score_cutoff=1) <= 1]
        if prefix:
            same = [it for it in near if _prefix(it.invoice_id) == prefix]
            near = same or near
        if len(near) == 1:
            found.append((near[0], False))
            seen.add(near[0].invoice_id)
    return customer_id, found, bool(tokens)


def _subset_sum(items: list[_Item], target: int, max_items: int = SUBSET_MAX_ITEMS,
                max_candidates: int = SUBSET_MAX_CANDIDATES, limit: int = 2) -> list[tuple[int, ...]]:
    """Index sets (2..max_items items) of the first ``max_candidates`` items summing to ``target``.

    Stops after ``limit`` solutions (we only need to know whether the solution is unique).
    """
    cand = [(k, it.avail) for k, it in enumerate(items[:max_candidates]) if 0 < it.avail < target]
    pairs: dict[int, list[tuple[int, int]]] = {}
    for (i, a), (j, b) in itertools.combinations(cand, 2):
        pairs.setdefault(a + b, []).append((i, j))
    sols: list[tuple[int, ...]] = []

    def add(sol):
        sol = tuple(sorted(sol))
        if sol not in sols:
            sols.append(sol)
        return len(sols) >= limit

    for i, j in pairs.get(target, []):
        if add((i, j)):
            return sols
    if max_items >= 3:
        for k, a in cand:
            for i, j in pairs.get(target - a, []):
                if k < i and add((k, i, j)):
                    return sols
    if max_items >= 4:
        for s, plist in pairs.items():
            other = pairs.get(target - s)
            if not other or s > target - s:
                continue
            for i, j in plist:
                for k, m in other:
                    if j < k and add((i, j, k, m)):
                        return sols
    return sols


def _line(rec, customer_id, item: _Item, amount: int, conf: float, rule: str, deduction: int = 0) -> dict:
    item.avail -= amount
    return {"receipt_id": rec.receipt_id, "receipt_customer_id": rec.customer_id, "customer_id": customer_id,
            "invoice_id": item.invoice_id, "amount_cents": int(amount), "confidence": float(conf), "rule": rule,
            "deduction_cents": int(deduction), "receipt_date": as_date(rec.receipt_date),
            "receipt_amount_cents": int(rec.amount_cents), "unapplied_cents": int(rec.unapplied_cents),
            "currency": rec.currency, "remittance_ref": rec.remittance_ref}


def _reference_pass(rec, book: _Book, state: dict) -> None:
    tokens = remittance_tokens(rec.remittance_ref)
    identified = state["customer_id"] is None
    customer_id, found, _ = _resolve_references(book, tokens, state["customer_id"])
    state["customer_id"] = customer_id
    state["had_tokens"] = bool(tokens)
    found = [(it, ex) for it, ex in found if it.currency == rec.currency]
    if not found:
        return
    remaining = state["remaining"]
    all_exact = all(ex for _, ex in found)
    ref_sum = sum(it.avail for it, _ in found)
    lines = state["lines"]
    if ref_sum == remaining:
        conf = 0.99 if all_exact else 0.97
        if identified:
            conf = 0.96
        for it, ex in found:
            lines.append(_line(rec, customer_id, it, it.avail, conf, "reference" if ex else "reference_fuzzy"))
        state["remaining"] = 0
    elif ref_sum > remaining:
        if len(found) == 1:
            it, ex = found[0]
            conf = 0.97 if ex else 0.85
            lines.append(_line(rec, customer_id, it, remaining, min(conf, 0.9) if identified else conf,
                               "reference" if ex else "reference_fuzzy"))
        else:
            # the payer listed more than it paid: a listed subset that ties, else oldest listed first
            items = [it for it, _ in found]
            sols = _subset_sum(items, remaining, max_items=len(items), limit=2)
            if len(sols) == 1:
                for k in sols[0]:
                    it, ex = found[k]
                    lines.append(_line(rec, customer_id, it, it.avail, 0.9, "reference" if ex else "reference_fuzzy"))
            else:
                left = remaining
                for it, ex in sorted(found, key=lambda f: (f[0].due_date, f[0].invoice_id)):
                    if left <= 0:
                        break
                    take = min(left, it.avail)
                    lines.append(_line(rec, customer_id, it, take, 0.7, "reference" if ex else "reference_fuzzy"))
                    left -= take
        state["remaining"] = 0
    else:
        conf = 0.97 if all_exact else 0.85
        if identified:
            conf = min(conf, 0.9)
        for it, ex in found:
            lines.append(_line(rec, customer_id, it, it.avail, conf, "reference" if ex else "reference_fuzzy"))
        state["remaining"] = remaining - ref_sum


def _amount_pass(rec, book: _Book, state: dict) -> None:
    remaining = state["remaining"]
    customer_id = state["customer_id"]
    lines = state["lines"]
    if remaining <= 0:
        return
    if customer_id is None:
        if state["had_tokens"]:
            return
        same = [it for it in book.items.values() if it.avail == remaining and it.currency == rec.currency]
        if len(same) == 1:
            it = same[0]
            lines.append(_line(rec, it.customer_id, it, remaining, 0.5, "exact_amount_any_customer"))
            state["remaining"] = 0
        return
    items = [it for it in book.open_for(customer_id) if it.currency == rec.currency]
    if not items:
        return
    # lower confidence when the text named numbers we could not find (it may pay something else)
    damp = 0.9 if (state["had_tokens"] and not lines) else 1.0
    same = [it for it in items if it.avail == remaining]
    if same:
        conf = 0.9 if len(same) == 1 else 0.5
        lines.append(_line(rec, customer_id, same[0], remaining, conf * damp, "exact_amount"))
        state["remaining"] = 0
        return
    sols = _subset_sum(items, remaining)
    if sols:
        conf = 0.85 if len(sols) == 1 else 0.5
        for k in sols[0]:
            it = items[k]
            lines.append(_line(rec, customer_id, it, it.avail, conf * damp, "subset_sum"))
        state["remaining"] = 0
        return
    short = [it for it in items if remaining < it.avail <= remaining / (1 - SHORT_PAY_TOLERANCE)]
    if short:
        short.sort(key=lambda it: (it.avail - remaining, it.due_date, it.invoice_id))
        it = short[0]
        conf = 0.75 if len(short) == 1 else 0.5
        lines.append(_line(rec, customer_id, it, remaining, conf * damp, "short_pay", it.avail - remaining))
        state["remaining"] = 0
        return
    left = remaining
    for it in items:
        if left <= 0:
            break
        take = min(left, it.avail)
        lines.append(_line(rec, customer_id, it, take, 0.3 * damp, "oldest_first"))
        left -= take
    state["remaining"] = left


def _frame(lines: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(lines, columns=PROPOSAL_COLUMNS)
    for col in ("amount_cents", "deduction_cents", "receipt_amount_cents", "unapplied_cents"):
        frame[col] = frame[col].astype("int64")
    frame["confidence"] = frame["confidence"].astype("float64")
    for col in ("receipt_id", "receipt_customer_id", "customer_id", "invoice_id", "rule", "currency",
                "remittance_ref"):
        frame[col] = frame[col].astype(object)
    return frame


def propose(conn: sa.Connection, as_of: dt.date | None = None,
            receipt_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Propose allocations of unapplied cash to open items (pure: nothing is written).

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date, optional
        Receipts and open items as they stand at the end of this day (default
        :func:`default_as_of`: today, or the last receipt date if later).
    receipt_ids : iterable of str, optional
        Only these receipts (default every receipt with unapplied cash). Items already proposed to
        other receipts are not held back: proposals are recomputed from the ledger.

    Returns
    -------
    pandas.DataFrame
        One row per proposed allocation: ``receipt_id, receipt_customer_id`` (None = unidentified),
        ``customer_id`` (identified payer), ``invoice_id, amount_cents, confidence, rule,
        deduction_cents`` (short payment left open on the item), ``receipt_date,
        receipt_amount_cents, unapplied_cents, currency, remittance_ref``. Ordered by receipt date,
        receipt, confidence (descending).

    Example
    -------
    >>> with engine.connect() as conn:  # doctest: +SKIP
    ...     propose(conn)[["receipt_id", "invoice_id", "amount_cents", "rule", "confidence"]].head(2)
    """
    as_of = as_of or default_as_of(conn)
    q = unapplied_receipts_query(as_of, every_return=True)
    if receipt_ids is not None:
        receipt_ids = list(receipt_ids)
        if not receipt_ids:
            return _frame([])
        q = q.where(rc.c.id.in_(receipt_ids))
    recs = conn.execute(q.order_by(rc.c.receipt_date, rc.c.id)).all()
    if not recs:
        return _frame([])
    customers = sorted({r.customer_id for r in recs if r.customer_id is not None})
    unidentified = any(r.customer_id is None for r in recs)
    oi = open_items(as_of)
    stmt = sa.select(oi.c.invoice_id, oi.c.customer_id, oi.c.currency, oi.c.due_date, oi.c.invoice_date,
                     oi.c.open_cents).where(oi.c.open_cents > 0)
    docs = sa.select(inv.c.id, inv.c.customer_id).where(inv.c.invoice_date <= as_of)
    if not unidentified:
        stmt = stmt.where(oi.c.customer_id.in_(customers))
        docs = docs.where(inv.c.customer_id.in_(customers))
    items = read_frame(conn, stmt,
                         ["invoice_id", "customer_id", "currency", "due_date", "invoice_date", "open_cents"])
    all_docs = read_frame(conn, docs, ["id", "customer_id"])
    book = _Book(items, all_docs)
    # unidentified receipts already partly applied: their payer is the customer of those items
    payer = {}
    if unidentified:
        ids = [r.receipt_id for r in recs if r.customer_id is None]
        payer = dict(conn.execute(
            sa.select(ap.c.receipt_id, sa.func.min(inv.c.customer_id))
            .select_from(ap.join(inv, inv.c.id == ap.c.invoice_id))
            .where(ap.c.receipt_id.in_(ids), ap.c.applied_date <= as_of).group_by(ap.c.receipt_id)).all())
    accounts = learned_payers(conn) if unidentified else {}
    names = payer_by_name(conn) if unidentified else {}
    states = []
    for rec in recs:
        customer = rec.customer_id if rec.customer_id is not None else payer.get(rec.receipt_id)
        if customer is None:
            customer, _how = identify_payer(rec, accounts, names)
        state = {"remaining": int(rec.unapplied_cents), "lines": [], "had_tokens": False, "customer_id": customer}
        _reference_pass(rec, book, state)
        states.append(state)
    for rec, state in zip(recs, states):
        _amount_pass(rec, book, state)
    lines = [ln for s in states for ln in s["lines"]]
    frame = _frame(lines)
    return frame.sort_values(["receipt_date", "receipt_id", "confidence", "invoice_id"],
                             ascending=[True, True, False, True], kind="stable", ignore_index=True)


SUSPENSE_COLUMNS = ["receipt_id", "receipt_date", "age_days", "amount_cents", "unapplied_cents", "currency",
                    "payer_name", "payer_account", "bank_reference", "remittance_ref", "statement_id"]


def suspense_queue(conn: sa.Connection, as_of: dt.date | None = None) -> pd.DataFrame:
    """The suspense queue: cash whose payer nobody has identified yet, oldest first, with its age.

    A receipt is in suspense at ``as_of`` when it has unapplied cash (:func:`unapplied_receipts_query`:
    returned receipts excluded), no customer, no cash applied to anyone's items, no proposal waiting
    for a person, and neither its payer account nor its payer name identifies a customer
    (:func:`identify_payer`). Source: ``receipts``, ``applications``, ``match_proposals``.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date, optional
        Default :func:`default_as_of`. ``age_days`` = as_of − receipt date.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUSPENSE_COLUMNS` (money in cents).

    Example
    -------
    >>> suspense_queue(conn)[["receipt_id", "age_days", "amount_cents"]].head()  # doctest: +SKIP
    """
    as_of = as_of or default_as_of(conn)
    u = unapplied_receipts_query(as_of, every_return=True).subquery("u")
    mp = schema.match_proposals
    pending = sa.select(mp.c.receipt_id).where(mp.c.status == "proposed")
    stmt = (sa.select(u.c.receipt_id, u.c.receipt_date, u.c.amount_cents, u.c.unapplied_cents, u.c.currency,
                      u.c.payer_name, u.c.payer_account, rc.c.bank_reference, u.c.remittance_ref, rc.c.statement_id)
            .select_from(u.join(rc, rc.c.id == u.c.receipt_id))
            .where(u.c.customer_id.is_(None), u.c.applied_cents == 0, u.c.receipt_id.not_in(pending))
            .order_by(u.c.receipt_date, u.c.receipt_id))
    rows = conn.execute(stmt).all()
    accounts, names = (learned_payers(conn), payer_by_name(conn)) if rows else ({}, {})
    out = []
    for r in rows:
        if identify_payer(r, accounts, names)[0] is not None:
            continue
        d = as_date(r.receipt_date)
        out.append({**r._asdict(), "receipt_date": d, "age_days": (as_of - d).days})
    frame = pd.DataFrame(out, columns=SUSPENSE_COLUMNS)
    for col in ("amount_cents", "unapplied_cents", "age_days"):
        frame[col] = frame[col].astype("int64")
    frame["statement_id"] = frame["statement_id"].astype("Int64")
    for col in ("payer_name", "payer_account", "bank_reference", "remittance_ref"):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame
