"""What a contact is worth, and a policy backtest of worklist ranking rules.

**Contact value** (:func:`contact_values`, the worklist's ranking): the cash a contact today is
expected to bring in within the next :data:`HORIZON_DAYS` days that would not have come anyway::

    value = response × Σ over the account's overdue, undisputed open items of  open × (1 − P(paid within the horizon anyway))

* ``response`` — how often this customer paid an overdue item within :data:`RESPONSE_DAYS` days of
  a contact about it (calls, emails, letters, portal messages, escalations dated before the scoring
  date; a note is not a contact), shrunk towards the ledger-wide rate with the weight of
  :data:`PRIOR_CONTACTS` contacts so a customer with few contacts gets the average;
* ``P(paid within the horizon anyway)`` — a survival estimate conditioned on how late the item already
  is: of the customer's items that were still unpaid ``d`` days after their due date (``d`` = the open
  item's days past due today), the share paid within the next :data:`HORIZON_DAYS` days (items still
  open count as not paid), shrunk towards the same share over all customers with the weight of
  :data:`analytics.risk.lateness.PRIOR_ITEMS` items. On the generated ledger it correlates 0.65 with what actually happened,
  against 0.43 for the days-to-pay model's interval (which is conditioned on the item's age only
  crudely);
* an item in an open dispute is not worth a collection call (it waits for the dispute's resolution).

Everything uses only ledger rows dated before the scoring date.

**Policy backtest** (:func:`policy_backtest`, ``python -m analytics risk policy-backtest``): on a
ledger generated with contact effects (``generate --contact-effects``: each customer's true response
is recorded in ``ledger_meta``, see :func:`analytics.generator.contact_truth`) replay
:data:`HORIZON_DAYS` days from a start date. Every business day each collector contacts up to
``capacity`` of their accounts that have an overdue item still unpaid (an account at most once a
week), in the order of a ranking rule. A contacted customer pays each overdue unpaid item 2–6 days
later with its TRUE response probability (the generator's rule for a call; the random draws are the
same for every rule; items in an open dispute do not respond); items nobody contacts are paid as the
ledger shows. Score: cash collected within the window, averaged over ``replays`` sets of random
draws; the extra cash over "no extra contacts" is what the ranking earned. Rules: ``none`` (no extra contact), ``overdue_amount``, ``oldest_item``,
``expected_loss`` (risk probability × open balance) and ``contact_value`` (the product's ranking).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.db import connection, days_between, read_frame
from analytics.errors import UserError
from analytics.ledger import NO_FILTER, LedgerFilter, is_contact, open_items, receivable, settlements
from analytics.risk.lateness import PRIOR_ITEMS, paid_anyway  # noqa: F401  (PRIOR_ITEMS: documented here)

HORIZON_DAYS = 30
"""Cash is counted within this many days of the contact (backtest: of the start date)."""

RESPONSE_DAYS = 9
"""A payment this many days or fewer after a contact about the item counts as a response."""

RESPONSE_MIN_DPD = 10
"""Only contacts about items at least this many days past due are read: around the due date most
customers pay whether contacted or not, so a payment then says nothing about the contact (on the
generated ledger this doubles the rank correlation of the estimate with the true response, 0.33 -> 0.65)."""

PRIOR_CONTACTS = 5.0
"""Weight (in contacts) of the ledger-wide response rate in each customer's estimate."""

DEFAULT_RESPONSE = 0.3
"""The ledger-wide response rate assumed while the ledger holds fewer than :data:`MIN_CONTACTS`
readable contacts (a new ledger: every account then gets it, and contact value ranks by the amount
at stake)."""

MIN_CONTACTS = 30

RULES = ("none", "overdue_amount", "oldest_item", "expected_loss", "contact_value")
"""Ranking rules the backtest compares, in the order printed."""

RULE_LABELS = {"none": "no extra contacts", "overdue_amount": "largest overdue amount",
               "oldest_item": "oldest overdue item", "expected_loss": "expected loss (risk × balance)",
               "contact_value": "contact value (the product's ranking)"}


def response_rates(conn: sa.Connection, as_of: dt.date, customer_ids=None) -> pd.Series:
    """Each customer's estimated response to a contact, from contacts dated before ``as_of``.

    A contact about an item (activity with an ``invoice_id``, :func:`analytics.ledger.is_contact`)
    made while the item was open and at least :data:`RESPONSE_MIN_DPD` days past due counts as answered when the item's last cash arrived 1 to
    :data:`RESPONSE_DAYS` days later (before ``as_of``). Estimate = (answered + PRIOR·overall) /
    (contacts + PRIOR) with PRIOR = :data:`PRIOR_CONTACTS`.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
    customer_ids : sequence of str, optional
        Customers to return (default: every customer with a contact, others get the overall rate
        when asked for).

    Returns
    -------
    pandas.Series
        Indexed by customer id, values in [0, 1]; ``attrs["overall"]`` holds the ledger-wide rate.

    Example
    -------
    >>> response_rates(conn, dt.date(2026, 10, 1)).head()          # doctest: +SKIP
    """
    a, inv = schema.activities, schema.invoices
    s = settlements()
    d = sa.literal(as_of, sa.Date)
    last_cash = (sa.select(s.c.item_id, sa.func.max(s.c.move_date).label("paid_on"))
                 .where(s.c.kind == "cash", s.c.move_date < d).group_by(s.c.item_id).subquery("last_cash"))
    contact_day = sa.cast(a.c.occurred_at, sa.Date)
    stmt = (sa.select(a.c.customer_id, contact_day.label("contact_day"), last_cash.c.paid_on)
            .select_from(a.join(inv, inv.c.id == a.c.invoice_id)
                         .outerjoin(last_cash, last_cash.c.item_id == a.c.invoice_id))
            .where(is_contact(a.c.type), contact_day < d, receivable(inv.c.doc_type),
                   days_between(inv.c.due_date, contact_day) >= RESPONSE_MIN_DPD,
                   sa.or_(last_cash.c.paid_on.is_(None), last_cash.c.paid_on > contact_day)))
    f = read_frame(conn, stmt, ["customer_id", "contact_day", "paid_on"])
    f["customer_id"] = f["customer_id"].astype(str)
    gap = (pd.to_datetime(f["paid_on"]) - pd.to_datetime(f["contact_day"])).dt.days
    f["answered"] = (gap >= 1) & (gap <= RESPONSE_DAYS)
    overall = float(f["answered"].mean()) if len(f) >= MIN_CONTACTS else DEFAULT_RESPONSE
    g = f.groupby("customer_id")["answered"].agg(["sum", "count"])
    rate = (g["sum"] + PRIOR_CONTACTS * overall) / (g["count"] + PRIOR_CONTACTS)
    if customer_ids is not None:
        rate = rate.reindex([str(c) for c in customer_ids]).fillna(overall)
    rate.attrs["overall"] = overall
    return rate.rename("response")


def item_outlook(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER,
                 horizon_days: int = HORIZON_DAYS) -> pd.DataFrame:
    """Open receivables at the start of ``as_of`` with days past due, open dispute flag and the chance
    each is paid within the horizon without a contact (:func:`paid_anyway`).

    Returns
    -------
    pandas.DataFrame
        ``invoice_id, customer_id, collector_id, due_date, open_cents, days_past_due, disputed,
        p_paid_anyway``, ordered by invoice id.

    Example
    -------
    >>> item_outlook(conn, dt.date(2026, 10, 1)).head()             # doctest: +SKIP
    """
    from analytics.ledger import open_disputes_at

    before = as_of - dt.timedelta(days=1)
    oi = open_items(before, flt)
    c = schema.customers
    od = open_disputes_at(before, flt).subquery("od")
    disputed = sa.exists().where(od.c.invoice_id == oi.c.invoice_id)
    items = read_frame(
        conn, sa.select(oi.c.invoice_id, oi.c.customer_id, c.c.collector_id, oi.c.due_date, oi.c.open_cents,
                        sa.case((disputed, 1), else_=0))
        .select_from(oi.join(c, c.c.id == oi.c.customer_id))
        .where(oi.c.open_cents > 0, receivable(oi.c.doc_type)),
        ["invoice_id", "customer_id", "collector_id", "due_date", "open_cents", "disputed"])
    items["invoice_id"] = items["invoice_id"].astype(str)
    items["customer_id"] = items["customer_id"].astype(str)
    items["collector_id"] = items["collector_id"].fillna("(none)").astype(str)
    items["open_cents"] = pd.to_numeric(items["open_cents"]).astype("int64")
    items["disputed"] = pd.to_numeric(items["disputed"]).astype(bool)
    items["days_past_due"] = (pd.Timestamp(as_of) - pd.to_datetime(items["due_date"])).dt.days.astype("int64")
    items = items.sort_values("invoice_id", kind="stable").reset_index(drop=True)
    items["p_paid_anyway"] = paid_anyway(conn, as_of, items, horizon_days) if len(items) else np.zeros(0)
    return items


def _day_numbers(values) -> np.ndarray:
    return (pd.to_datetime(pd.Series(values)).to_numpy().astype("datetime64[D]").astype("int64")).astype(float)


def contact_values(conn_or_engine, as_of: dt.date, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """What a contact today is worth per account (see the module docstring).

    Parameters
    ----------
    conn_or_engine : sqlalchemy.Engine or Connection
    as_of : datetime.date
    flt : LedgerFilter, optional

    Returns
    -------
    pandas.DataFrame
        ``customer_id, response, at_stake_cents`` (overdue undisputed open amount not expected to be paid within
        the horizon anyway), ``contact_value_cents`` (response × at stake, rounded).

    Example
    -------
    >>> contact_values(engine, dt.date(2026, 10, 31)).nlargest(5, "contact_value_cents")  # doctest: +SKIP
    """
    with connection(conn_or_engine) as conn:
        items = item_outlook(conn, as_of, flt)
        resp = response_rates(conn, as_of, items["customer_id"].unique().tolist())
    if items.empty:
        return pd.DataFrame({"customer_id": pd.Series(dtype=str), "response": pd.Series(dtype=float),
                             "at_stake_cents": pd.Series(dtype="int64"), "contact_value_cents": pd.Series(dtype="int64")})
    chase = (items["days_past_due"] > 0) & ~items["disputed"]
    items = items.assign(at_stake=np.where(chase, items["open_cents"] * (1 - items["p_paid_anyway"]), 0.0))
    out = items.groupby("customer_id", as_index=False)["at_stake"].sum()
    out["response"] = resp.reindex(out["customer_id"]).to_numpy()
    out["at_stake_cents"] = np.round(out["at_stake"]).astype("int64")
    out["contact_value_cents"] = np.round(out["at_stake"] * out["response"]).astype("int64")
    return out[["customer_id", "response", "at_stake_cents", "contact_value_cents"]]


# --------------------------------------------------------------------------------------------
# Policy backtest
# --------------------------------------------------------------------------------------------
def _window_items(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter) -> pd.DataFrame:
    """:func:`item_outlook` at ``start`` plus each item's natural cash in the window and natural
    settlement day (as the ledger shows)."""
    items = item_outlook(conn, start, flt)
    s = settlements()
    moves = read_frame(
        conn, sa.select(s.c.item_id, s.c.move_date, s.c.delta_cents, s.c.kind)
        .where(s.c.move_date >= sa.literal(start, sa.Date), s.c.move_date < sa.literal(end, sa.Date)),
        ["item_id", "move_date", "delta_cents", "kind"])
    moves["item_id"] = moves["item_id"].astype(str)
    moves["delta_cents"] = pd.to_numeric(moves["delta_cents"]).astype("int64")
    moves = moves[moves["item_id"].isin(items["invoice_id"])]
    cash = moves[moves["kind"] == "cash"].groupby("item_id")["delta_cents"].sum()
    other = moves[moves["kind"] != "cash"].groupby("item_id")["delta_cents"].sum()
    items["natural_cash"] = (-cash.reindex(items["invoice_id"]).fillna(0)).astype("int64").to_numpy()
    items["other_moves"] = other.reindex(items["invoice_id"]).fillna(0).astype("int64").to_numpy()
    moves = moves.sort_values(["item_id", "move_date"], kind="stable")
    moves["running"] = moves.groupby("item_id")["delta_cents"].cumsum()
    moves = moves.merge(items[["invoice_id", "open_cents"]], left_on="item_id", right_on="invoice_id")
    closed = moves[moves["open_cents"] + moves["running"] <= 0].groupby("item_id")["move_date"].min()
    items["settle_day"] = _day_numbers(closed.reindex(items["invoice_id"]).fillna(pd.Timestamp("2999-12-31")))
    items["due_day"] = _day_numbers(items["due_date"])
    return items


def _business_days(start: dt.date, end: dt.date) -> list[int]:
    days = pd.bdate_range(start, end - dt.timedelta(days=1))
    return _day_numbers(days).astype(int).tolist()


def _simulate(items: pd.DataFrame, days: list[int], end_day: float, capacity: int, scorer, response: np.ndarray,
              draws: np.ndarray, lags: np.ndarray) -> dict:
    """One replay: contacts by ``scorer(unpaid, day, failed) -> per-item weight`` summed per account
    (``failed``: per item, contacts about its account in this replay that brought no payment of it)."""
    n = len(items)
    settle = items["settle_day"].to_numpy(dtype=float)
    due = items["due_day"].to_numpy(dtype=float)
    paid_early = np.full(n, np.inf)  # day a contact made the item be paid
    cust = items["customer_id"].to_numpy()
    coll = items["collector_id"].to_numpy()
    last_contact: dict[str, float] = {}
    failed = np.zeros(n)
    contacts = 0
    if scorer is not None:
        for k, d in enumerate(days):
            unpaid = (settle > d) & (paid_early > d) & (due < d)
            if not unpaid.any():
                continue
            weight = scorer(unpaid, d, failed)
            frame = pd.DataFrame({"customer_id": cust[unpaid], "collector_id": coll[unpaid],
                                  "w": weight[unpaid]}).groupby(["collector_id", "customer_id"], as_index=False)["w"].sum()
            frame = frame[[d - last_contact.get(c, -1e9) >= 7 for c in frame["customer_id"]]]
            frame = frame.sort_values(["collector_id", "w", "customer_id"], ascending=[True, False, True], kind="stable")
            chosen = frame.groupby("collector_id").head(capacity)["customer_id"]
            for c in chosen:
                last_contact[c] = d
            contacts += len(chosen)
            asked = unpaid & np.isin(cust, chosen.to_numpy())
            hit = asked & (draws[:, k] < response)
            failed += asked & ~hit
            paid_early = np.where(hit, np.minimum(paid_early, d + lags[:, k]), paid_early)
    early = paid_early < np.minimum(settle, end_day)
    # an item a contact brought in pays what was open (less credits/adjustments in the window) at once
    full = np.maximum(items["open_cents"].to_numpy() + items["other_moves"].to_numpy(), 0)
    cash = np.where(early, np.maximum(full, items["natural_cash"].to_numpy()), items["natural_cash"].to_numpy())
    return {"cash_cents": int(cash.sum()), "contacts": int(contacts), "items_brought_forward": int(early.sum())}


def policy_backtest(conn_or_engine, start: dt.date | None = None, capacity: int = 2,
                    days: int = HORIZON_DAYS, replays: int = 5, seed: int = 0, model=None,
                    flt: LedgerFilter = NO_FILTER) -> dict:
    """Replay ``days`` days from ``start`` under each ranking rule of :data:`RULES` (module docstring).

    Parameters
    ----------
    conn_or_engine : sqlalchemy.Engine or Connection
        A ledger generated with contact effects (``generate --contact-effects``).
    start : datetime.date, optional
        First day of the replay (default: ``days`` days before the ledger's last date, so the window
        lies inside the history).
    capacity : int
        Contacts per collector per business day.
    days : int
        Length of the window; cash is counted for payments dated in ``[start, start + days)``.
    replays : int
        Sets of random responses (seeds ``seed .. seed + replays − 1``); every rule sees the same sets.
    seed : int
    model : RiskModel, path or None
        Risk model of the ``expected_loss`` rule (default: trained on the history before ``start``).
    flt : LedgerFilter, optional
        Accounts replayed; one currency (:func:`analytics.ledger.resolve_currency`: the ledger's main
        one unless the filter names one), since cash is never added across currencies.

    Returns
    -------
    dict
        ``start, end, days, capacity, replays, currency, collectors, accounts_overdue, open_items, rows`` — one row
        per rule: ``rule, label, cash_cents`` (mean over replays), ``extra_cents`` (over no extra
        contacts), ``extra_min_cents`` / ``extra_max_cents`` (over replays), ``contacts``,
        ``extra_per_contact_cents``; and ``product_vs_overdue`` — the contact-value rule's extra cash
        minus the overdue-amount rule's, mean / min / max over the replays (paired: same draws) and
        in how many replays it was ahead.

    Raises
    ------
    UserError
        When the ledger has no contact-effect ground truth, or the window runs past its end.

    Example
    -------
    >>> table = policy_backtest(engine, capacity=2)                  # doctest: +SKIP
    >>> [r["rule"] for r in table["rows"]][:2]                       # doctest: +SKIP
    ['none', 'overdue_amount']
    """
    from analytics.generator import contact_truth
    from analytics.ledger import default_as_of, resolve_currency
    from analytics.risk.scoring import score_accounts

    if capacity < 1:
        raise UserError(f"--capacity must be at least 1 contact a day (got {capacity})")
    if replays < 1:
        raise UserError(f"--replays must be at least 1 (got {replays})")
    with connection(conn_or_engine) as conn:
        truth = contact_truth(conn)
        if truth is None:
            raise UserError("the policy backtest needs a ledger generated with contact effects and their ground "
                            "truth: python -m analytics generate --contact-effects")
        responses, effects = truth
        flt, currency = resolve_currency(conn, flt)
        last = default_as_of(conn)
        start = start or (last - dt.timedelta(days=days))
        end = start + dt.timedelta(days=days)
        if end > last + dt.timedelta(days=1):
            raise UserError(f"the window {start.isoformat()} + {days} days runs past the ledger's last date "
                            f"{last.isoformat()}; choose an earlier --start")
        items = _window_items(conn, start, end, flt)
        scores = score_accounts(conn, start, flt, model=model)
        resp = response_rates(conn, start, items["customer_id"].unique().tolist())
    weight = {str(step[1]): float(step[2]) for step in effects["steps"]}
    true_r = np.array([responses.get(c, 0.0) for c in items["customer_id"]]) * weight.get("call", 1.0)
    true_r = np.where(items["disputed"].to_numpy(), 0.0, true_r)  # a disputed item waits for its resolution
    day_list = _business_days(start, end)
    end_day = _day_numbers([end])[0]
    open_c = items["open_cents"].to_numpy(dtype=float)
    due = items["due_day"].to_numpy(dtype=float)
    prob = scores.set_index("customer_id")["probability"].reindex(items["customer_id"]).fillna(0).to_numpy()
    r_hat = resp.reindex(items["customer_id"]).to_numpy(dtype=float)
    chase = open_c * (1 - items["p_paid_anyway"].to_numpy()) * ~items["disputed"].to_numpy()
    scorers = {
        "none": None,
        "overdue_amount": lambda unpaid, d, failed: open_c,
        "oldest_item": _max_per_account(items, due),  # the account's oldest unpaid overdue item
        "expected_loss": lambda unpaid, d, failed: prob * open_c,
        # what the collector learns: a contact that brought no payment lowers the customer's response
        # (Beta posterior mean with PRIOR_CONTACTS contacts of weight on the estimate)
        "contact_value": lambda unpaid, d, failed: r_hat * PRIOR_CONTACTS / (PRIOR_CONTACTS + failed) * chase,
    }
    lo, hi = effects["lag_days"]
    runs = {rule: [] for rule in RULES}
    for k in range(replays):
        rng = np.random.default_rng(seed + k)
        draws = rng.random((len(items), len(day_list)))
        lags = rng.integers(lo, hi + 1, size=(len(items), len(day_list))).astype(float)
        for rule in RULES:
            runs[rule].append(_simulate(items, day_list, end_day, capacity, scorers[rule], true_r, draws, lags))
    base = np.array([r["cash_cents"] for r in runs["none"]], dtype=float)
    rows = []
    for rule in RULES:
        cash = np.array([r["cash_cents"] for r in runs[rule]], dtype=float)
        contacts = float(np.mean([r["contacts"] for r in runs[rule]]))
        extra = cash - base
        rows.append({"rule": rule, "label": RULE_LABELS[rule], "cash_cents": int(round(cash.mean())),
                     "extra_cents": int(round(extra.mean())), "extra_min_cents": int(extra.min()),
                     "extra_max_cents": int(extra.max()), "contacts": int(round(contacts)),
                     "extra_per_contact_cents": int(round(extra.mean() / contacts)) if contacts else 0})
    diff = (np.array([r["cash_cents"] for r in runs["contact_value"]], dtype=float)
            - np.array([r["cash_cents"] for r in runs["overdue_amount"]], dtype=float))
    overdue = items[items["days_past_due"] > 0]
    return {"start": start.isoformat(), "end": end.isoformat(), "days": days, "capacity": capacity,
            "replays": replays, "currency": currency, "collectors": int(items["collector_id"].nunique()),
            "accounts_overdue": int(overdue["customer_id"].nunique()), "open_items": int(len(items)), "rows": rows,
            "product_vs_overdue": {"mean_cents": int(round(diff.mean())), "min_cents": int(diff.min()),
                                   "max_cents": int(diff.max()), "replays_ahead": int((diff > 0).sum()),
                                   "share_of_overdue_rule_extra": round(float(diff.mean() / max(
                                       rows[1]["extra_cents"], 1)), 4)}}


def _max_per_account(items: pd.DataFrame, due: np.ndarray):
    """Scorer for ``oldest_item``: each account's weight is its oldest unpaid overdue item's days past
    due (the sum over items is made equal to it by giving that value to one item per account)."""
    cust = items["customer_id"].to_numpy()

    def scorer(unpaid, d, failed):
        age = np.where(unpaid, d - due, -np.inf)
        frame = pd.DataFrame({"c": cust, "age": age, "i": np.arange(len(cust))})
        top = frame.sort_values(["c", "age"], ascending=[True, False], kind="stable").groupby("c").head(1)
        w = np.zeros(len(cust))
        w[top["i"].to_numpy()] = np.where(np.isfinite(top["age"]), top["age"], 0.0)
        return w
    return scorer


def format_table(result: dict) -> str:
    """The backtest as a plain-text table (what ``risk policy-backtest`` prints; money in currency units).

    Example
    -------
    >>> print(format_table(policy_backtest(engine)))                # doctest: +SKIP
    """
    from analytics.ledger import to_units

    lines = [f"Policy backtest {result['start']} .. {result['end']} ({result['days']} days), {result['capacity']} "
             f"contacts per collector per business day, {result['collectors']} collectors, "
             f"{result['accounts_overdue']} accounts overdue at the start, mean of {result['replays']} replays, "
             f"{result['currency']}",
             f"{'ranking rule':40s} {'cash in window':>16s} {'extra vs none':>14s} {'range':>23s} {'contacts':>9s} "
             f"{'extra/contact':>13s}"]
    for r in result["rows"]:
        rng = f"{to_units(r['extra_min_cents']):,.0f} .. {to_units(r['extra_max_cents']):,.0f}"
        lines.append(f"{r['label']:40s} {to_units(r['cash_cents']):>16,.0f} {to_units(r['extra_cents']):>14,.0f} "
                     f"{rng:>23s} {r['contacts']:>9d} {to_units(r['extra_per_contact_cents']):>13,.2f}")
    d = result["product_vs_overdue"]
    lines.append(f"contact value minus largest overdue amount: {to_units(d['mean_cents']):,.0f} on average "
                 f"({d['share_of_overdue_rule_extra']:+.1%} of that rule's extra cash; "
                 f"{to_units(d['min_cents']):,.0f} .. {to_units(d['max_cents']):,.0f}; ahead in "
                 f"{d['replays_ahead']} of {result['replays']} replays)")
    return "\n".join(lines)
