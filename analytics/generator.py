"""Seeded synthetic accounts-receivable ledger: ``python -m analytics generate``.

The generator writes a realistic, fully reproducible AR history into any supported database, so the
dashboard, KPIs, risk models, forecasts and the cash-application matcher have data to work on and
ground truth to be checked against.

What is simulated (all vectorised with numpy; no per-invoice Python loops):

* **Customers** in five behaviour segments (``early``, ``on_time``, ``chronic_late``,
  ``deteriorating`` — days late drift upward over time — and ``defaulting``), several business units,
  regions AMER/EMEA/APAC with countries, one currency each (USD/EUR/GBP), payment terms net 30/45/60,
  credit limits, paperless flag, ``customer_since``, ~8 collectors assigned by region.
* **Invoices** with month/quarter-end peaks, mild growth, weekday bias, log-normal amounts with a
  per-customer scale; rare **debit memos**; **credit memos** for returns (applied to the invoice when
  issued before payment, otherwise left open as customer credit) and for disputes settled by credit.
* **Payments**: days late per invoice ``~ Normal(mean + drift * years, sd)`` plus rare outliers;
  partial payments (two receipts), short payments (difference posted as a ``deduction`` adjustment or
  left open), batch payers whose weekly pay run settles several invoices with one receipt,
  methods check/eft/wire/card.
* **Disputes** (pricing, quantity, damaged, not_received, duplicate_billing): the undisputed part is
  paid on schedule, the rest after resolution (credit issued, paid, rejected, withdrawn, written off)
  or still open at the end.
* **Defaults**: a customer that defaults stops paying, is put on credit hold soon after, and its
  remaining items are written off (``adjustments.kind = 'write_off'``) some months later.
* **Collections**: promises to pay (kept or broken, as it turns out), collection activities
  (email, call, letter or portal, escalation) by the customer's collector on overdue items.
* **Cash application backlog**: recent receipts are not (fully) applied yet; remittance text is
  clean, lists several invoices, is missing, or has typos. ``receipt_truth`` holds the true split of
  every receipt, ``customer_truth`` the behaviour parameters of every customer.

Same arguments give a byte-identical ledger (except ``import_batches.loaded_at``, the wall-clock time
of the load). Today's date is never used: the history ends at ``end``.

Example
-------
>>> import datetime as dt
>>> from analytics import db
>>> engine = db.connect("duckdb:///:memory:")
>>> summary = generate(engine, customers=20, invoices=500, seed=1, end=dt.date(2025, 12, 31), months=12)
>>> summary["invoices"]
500
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from typing import Callable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics import audit, db, schema, summaries
from analytics.errors import UserError

Progress = Callable[[float, str], None]

DEFAULT_END = dt.date(2026, 10, 31)
EPOCH = dt.date(1970, 1, 1)
NEVER = 10**7  # a day number far beyond any history: "not within the history"

SEGMENTS = schema.SEGMENTS
SEGMENT_MIX = np.array([0.17, 0.42, 0.20, 0.13, 0.08])  # same order as SEGMENTS

# Per-segment uniform ranges (lo, hi) of each customer's behaviour parameters.
#   mean/sd: days late (payment date - due date); drift: days per year added to mean;
#   default: probability of defaulting within the history; partial/dispute: rates per invoice.
SEGMENT_PARAMS = {
    "early":         dict(mean=(-9, -2), sd=(1.5, 4), drift=(0, 0), default=(0.002, 0.002),
                          partial=(0.0, 0.02), dispute=(0.003, 0.015)),
    "on_time":       dict(mean=(-1, 4), sd=(2, 6), drift=(-1, 1), default=(0.01, 0.01),
                          partial=(0.01, 0.04), dispute=(0.005, 0.025)),
    "chronic_late":  dict(mean=(15, 45), sd=(8, 18), drift=(-2, 3), default=(0.04, 0.04),
                          partial=(0.05, 0.14), dispute=(0.02, 0.06)),
    "deteriorating": dict(mean=(0, 8), sd=(4, 10), drift=(12, 40), default=(0.12, 0.12),
                          partial=(0.03, 0.10), dispute=(0.02, 0.06)),
    "defaulting":    dict(mean=(10, 30), sd=(8, 20), drift=(5, 20), default=(0.75, 0.95),
                          partial=(0.08, 0.20), dispute=(0.03, 0.08)),
}
# Contact effects (opt-in: ``generate(..., contact_effects=True)``, ``--contact-effects``). Each customer
# has a true *contact response* r (uniform in its segment's range): every step of the dunning ladder
# taken while an item is overdue and unpaid makes the customer pay it ``CONTACT_LAG`` business days
# later with probability r × the step's weight, instead of on its natural date. Customers who pay on
# their own schedule (early, on time) and defaulting ones barely respond; chronic late payers pay when
# chased: what a contact is worth is not the overdue amount.
# The ground truth is written to ``ledger_meta`` (see :func:`contact_truth`); without the option no
# random number is drawn for it, so existing seeds give byte-identical ledgers.
CONTACT_RESPONSE = {"early": (0.0, 0.1), "on_time": (0.02, 0.2), "chronic_late": (0.5, 0.95),
                    "deteriorating": (0.2, 0.6), "defaulting": (0.0, 0.03)}
CONTACT_STEPS = ((3, "email", 0.25), (15, "call", 1.0), (30, "letter", 0.4), (45, "call", 1.0),
                 (70, "escalation", 0.8))
"""Dunning ladder with contact effects: (days after due, activity type, weight on the customer's response)."""
CONTACT_LAG = (2, 6)
"""A responding customer pays 2-6 days (then the next business day) after the contact."""
TRUTH_RESPONSE_PREFIX = "truth.contact_response."
TRUTH_EFFECTS_KEY = "truth.contact_effects"
SHORT_PAY_RATE = 0.03     # invoices paid short (deduction)
RETURN_RATE = 0.012       # invoices followed by a credit memo for a return
DEBIT_MEMO_RATE = 0.004   # debit memos per invoice
BATCH_PAYER_RATE = 0.30   # customers paying several invoices per weekly pay run
PROMISE_RATE = 0.35       # overdue items on which a promise to pay is obtained
N_COLLECTORS = 8

# region -> [(country, currency, weight)]
REGIONS = {
    "AMER": [("US", "USD", 0.70), ("CA", "USD", 0.12), ("MX", "USD", 0.10), ("BR", "USD", 0.08)],
    "EMEA": [("DE", "EUR", 0.25), ("GB", "GBP", 0.25), ("FR", "EUR", 0.15), ("NL", "EUR", 0.10),
             ("ES", "EUR", 0.08), ("IT", "EUR", 0.08), ("AE", "USD", 0.05), ("CH", "EUR", 0.04)],
    "APAC": [("JP", "USD", 0.30), ("AU", "USD", 0.25), ("SG", "USD", 0.20), ("IN", "USD", 0.25)],
}
REGION_MIX = {"AMER": 0.50, "EMEA": 0.35, "APAC": 0.15}
# business unit -> (weight, terms 30/45/60 probabilities, amount scale factor)
BUSINESS_UNITS = {
    "Industrial": (0.35, (0.30, 0.40, 0.30), 2.0),
    "Software":   (0.25, (0.70, 0.20, 0.10), 1.0),
    "Services":   (0.25, (0.50, 0.35, 0.15), 0.7),
    "Parts":      (0.15, (0.60, 0.30, 0.10), 0.4),
}
TERMS = np.array([30, 45, 60])
METHODS = np.array(["check", "eft", "wire", "card"])
METHOD_MIX = np.array([0.30, 0.42, 0.18, 0.10])
COLLECTOR_NAMES = ["Alice Moreau", "Ben Okafor", "Carmen Ruiz", "David Chen", "Elena Petrova",
                   "Farid Haddad", "Grace Kim", "Hiro Tanaka"]
COLLECTOR_REGIONS = ["AMER", "AMER", "AMER", "EMEA", "EMEA", "EMEA", "APAC", "APAC"]
NAME_A = ["Acme", "Apex", "Atlas", "Aurora", "Beacon", "Blue Ridge", "Cedar", "Cobalt", "Crescent", "Delta",
          "Evergreen", "Falcon", "Frontier", "Global", "Granite", "Harbor", "Horizon", "Iron Peak", "Keystone",
          "Lakeside", "Liberty", "Meridian", "Monarch", "Nordic", "Northwind", "Oakridge", "Orion", "Pacific",
          "Pinnacle", "Redwood", "Riverside", "Sierra", "Silverline", "Summit", "Sunrise", "Titan", "Unity",
          "Vanguard", "Vertex", "Westfield"]
NAME_B = ["Logistics", "Manufacturing", "Foods", "Retail", "Energy", "Pharma", "Systems", "Components",
          "Construction", "Textiles", "Electronics", "Motors", "Packaging", "Chemicals", "Health", "Media",
          "Hospitality", "Supply", "Industries", "Technologies", "Agritech", "Metals", "Plastics", "Labs",
          "Outfitters", "Distribution", "Automation", "Marine", "Aerospace", "Furniture"]
LEGAL = {"US": "Inc.", "CA": "Ltd.", "MX": "S.A. de C.V.", "BR": "Ltda.", "DE": "GmbH", "GB": "Ltd", "FR": "SAS",
         "NL": "B.V.", "ES": "S.L.", "IT": "S.r.l.", "AE": "LLC", "CH": "AG", "JP": "K.K.", "AU": "Pty Ltd",
         "SG": "Pte. Ltd.", "IN": "Pvt. Ltd."}
DISPUTE_REASONS = np.array(["pricing", "quantity", "damaged", "not_received", "duplicate_billing"])
DISPUTE_REASON_MIX = np.array([0.35, 0.25, 0.18, 0.12, 0.10])
DISPUTE_OUTCOMES = np.array(["credit_issued", "customer_paid", "rejected", "withdrawn", "written_off"])
DISPUTE_OUTCOME_MIX = np.array([0.35, 0.20, 0.20, 0.10, 0.15])
DEDUCTION_REASONS = np.array(["pricing deduction", "freight deduction", "promotional allowance",
                              "shortage", "early payment discount taken"])
MONTHS = np.array(["January", "February", "March", "April", "May", "June", "July", "August", "September",
                   "October", "November", "December"])

# Tables the generator fills, in insertion (foreign-key) order.
_WRITE_ORDER = ("collectors", "customers", "customer_truth", "invoices", "receipts", "applications",
                "adjustments", "disputes", "promises", "activities", "receipt_truth")


def _ledger_tables_to_clear() -> list[sa.Table]:
    """Tables emptied by ``replace``: customers and every table that (transitively) references it,
    invoices or receipts — children first. Users, collectors, audit log and import history are kept."""
    roots = {"customers", "invoices", "receipts"}
    clear = set(roots)
    changed = True
    while changed:
        changed = False
        for t in schema.metadata.sorted_tables:
            if t.name not in clear and any(fk.column.table.name in clear for fk in t.foreign_keys):
                clear.add(t.name)
                changed = True
    return [t for t in reversed(schema.metadata.sorted_tables) if t.name in clear]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _day(d: dt.date) -> int:
    return (d - EPOCH).days


def _dates(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype="int64").astype("datetime64[D]")


def _weekday(days: np.ndarray) -> np.ndarray:
    """Monday = 0 (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def _next_business_day(days: np.ndarray) -> np.ndarray:
    wd = _weekday(days)
    return days + np.where(wd == 5, 2, np.where(wd == 6, 1, 0))


def _uniform_int(rng: np.random.Generator, lo, hi, size) -> np.ndarray:
    """Integers uniform on [lo, hi] (inclusive; lo/hi may be arrays)."""
    lo = np.asarray(lo, dtype="int64")
    hi = np.asarray(hi, dtype="int64")
    return lo + np.floor(rng.random(size) * (hi - lo + 1)).astype("int64")


def _month_start(d: dt.date, back: int) -> dt.date:
    """First day of the month ``back`` months before ``d``'s month."""
    m = d.year * 12 + (d.month - 1) - back
    return dt.date(m // 12, m % 12 + 1, 1)


def _rng(seed: int, stage: int) -> np.random.Generator:
    """An independent stream per generation stage, so adding draws to one stage leaves the others alone."""
    return np.random.default_rng([seed, stage])


def _doc_ids(prefix: str, numbers: np.ndarray) -> np.ndarray:
    return (prefix + pd.Series(numbers, dtype="int64").astype(str).str.zfill(7)).to_numpy(dtype=object)


def _frame(columns: dict) -> pd.DataFrame:
    """DataFrame keeping text columns as Python-object columns (no conversion to Arrow strings, which
    costs more than it saves: DuckDB scans object columns faster), scalars broadcast."""
    n = next(len(v) for v in columns.values() if not np.isscalar(v) and v is not None)
    out = {}
    for key, v in columns.items():
        if v is None or isinstance(v, str):
            v = np.full(n, v, dtype=object)
        if isinstance(v, np.ndarray) and v.dtype.kind in "OU":
            v = pd.Series(v.astype(object, copy=False), dtype=object)
        out[key] = v
    return pd.DataFrame(out)


def _validate(customers, invoices, seed, end, months) -> None:
    for name, value in (("customers", customers), ("invoices", invoices), ("seed", seed), ("months", months)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise UserError(f"{name} must be an integer, got {value!r}")
    if customers < 1:
        raise UserError(f"customers must be at least 1, got {customers}")
    if invoices < customers:
        raise UserError(f"invoices ({invoices}) must be at least the number of customers ({customers}): "
                        "every customer gets at least one invoice")
    if invoices > 9_000_000:
        raise UserError(f"invoices must be at most 9,000,000 (7-digit document numbers), got {invoices}")
    if seed < 0:
        raise UserError(f"seed must be >= 0, got {seed}")
    if not 1 <= months <= 120:
        raise UserError(f"months must be between 1 and 120, got {months}")
    if not isinstance(end, dt.date) or isinstance(end, dt.datetime):
        raise UserError(f"end must be a date, got {end!r}")


# ------------------------------------------------------------------------------------------------
# building the ledger as frames (pure: no database)
# ------------------------------------------------------------------------------------------------
def build_frames(customers: int = 400, invoices: int = 40_000, seed: int = 42, end: dt.date = DEFAULT_END,
                 months: int = 24, progress: Progress | None = None,
                 contact_effects: bool = False) -> dict[str, pd.DataFrame]:
    """Simulate the ledger and return one DataFrame per table (columns named as in :mod:`analytics.schema`).

    Pure and deterministic: no database, no clock. :func:`generate` calls this and writes the frames.

    Parameters
    ----------
    customers, invoices : int
        Number of customers and of documents of type ``invoice`` (credit and debit memos come on top).
        ``invoices >= customers``: every customer has at least one invoice.
    seed : int
        Random seed; the same arguments give the same frames.
    end : datetime.date
        Last day of the history. Nothing (receipt, application, activity...) is dated after it.
    months : int
        Length of the history in calendar months, ending with ``end``'s month.
    progress : callable(fraction, message), optional
    contact_effects : bool
        Dunning contacts change when customers pay, with each customer's seeded response recorded as
        ground truth (see :data:`CONTACT_RESPONSE`); adds a ``ledger_meta`` frame. Off by default: the
        same seed then gives the same ledger as before the option existed.

    Returns
    -------
    dict[str, pandas.DataFrame]
        Keys ``collectors, customers, customer_truth, invoices, receipts, applications, adjustments,
        disputes, promises, activities, receipt_truth`` (and ``ledger_meta`` with contact effects).
        Date columns are ``datetime64``.

    Example
    -------
    >>> frames = build_frames(customers=10, invoices=200, seed=3, end=dt.date(2025, 6, 30), months=6)
    >>> len(frames["invoices"][frames["invoices"].doc_type == "invoice"])
    200
    """
    _validate(customers, invoices, seed, end, months)
    report = progress or (lambda fraction, message: None)
    start = _month_start(end, months - 1)
    s_day, e_day = _day(start), _day(end)
    report(0.02, "customers")
    cust = _customers(customers, seed, start, end)
    if contact_effects:
        cust["response"] = _contact_responses(cust, seed)
    report(0.10, "invoices")
    docs = _documents(cust, invoices, seed, s_day, e_day)
    report(0.25, "payments")
    pay = _payments(cust, docs, seed, s_day, e_day)
    report(0.45, "receipts and remittances")
    frames = _receipts(cust, docs, pay, seed, e_day)
    report(0.55, "collections")
    frames.update(_collections(cust, docs, pay, seed, e_day))
    frames.update(_static_frames(cust, docs, pay))
    if contact_effects:
        frames["ledger_meta"] = contact_truth_frame(cust)
    report(0.60, "built")
    return frames


def _customers(n: int, seed: int, start: dt.date, end: dt.date) -> dict:
    rng = _rng(seed, 1)
    s_day, e_day = _day(start), _day(end)
    seg = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_MIX)
    if n >= len(SEGMENTS):  # every segment present, so small ledgers still show every behaviour
        seg[: len(SEGMENTS)] = np.arange(len(SEGMENTS))
        seg = rng.permutation(seg)
    params = {k: np.zeros(n) for k in ("mean", "sd", "drift", "default", "partial", "dispute")}
    for i, name in enumerate(SEGMENTS):
        mask = seg == i
        for key, (lo, hi) in SEGMENT_PARAMS[name].items():
            params[key][mask] = np.round(lo + (hi - lo) * rng.random(mask.sum()), 4) + 0.0  # no -0.0
    region_names = np.array(list(REGION_MIX))
    region = rng.choice(len(region_names), size=n, p=np.array(list(REGION_MIX.values())))
    country = np.empty(n, dtype=object)
    currency = np.empty(n, dtype=object)
    legal = np.empty(n, dtype=object)
    for r, rname in enumerate(region_names):
        mask = region == r
        options = REGIONS[rname]
        pick = rng.choice(len(options), size=mask.sum(), p=np.array([o[2] for o in options]))
        country[mask] = np.array([o[0] for o in options], dtype=object)[pick]
        currency[mask] = np.array([o[1] for o in options], dtype=object)[pick]
        legal[mask] = np.array([LEGAL[o[0]] for o in options], dtype=object)[pick]
    bu_names = np.array(list(BUSINESS_UNITS))
    bu = rng.choice(len(bu_names), size=n, p=np.array([v[0] for v in BUSINESS_UNITS.values()]))
    terms = np.zeros(n, dtype="int64")
    bu_scale = np.zeros(n)
    for b, bname in enumerate(bu_names):
        mask = bu == b
        terms[mask] = TERMS[rng.choice(3, size=mask.sum(), p=np.array(BUSINESS_UNITS[bname][1]))]
        bu_scale[mask] = BUSINESS_UNITS[bname][2]
    # amounts: per-customer median invoice amount (currency units), log-normal across customers
    scale = 1_500.0 * bu_scale * np.exp(rng.normal(0.0, 0.9, n))
    weight = np.exp(rng.normal(0.0, 0.8, n))  # relative invoicing volume
    # customer since: most before the history, some join during it
    joins = rng.random(n) < 0.18
    since = np.where(joins, s_day + np.floor(rng.random(n) * (e_day - s_day) * 0.7),
                     s_day - 180 - np.floor(rng.random(n) * 365 * 10)).astype("int64")
    paperless = rng.random(n) < 0.55
    paperless_since = since + np.floor(rng.random(n) * np.maximum(e_day - 30 - since, 1)).astype("int64")
    method = rng.choice(len(METHODS), size=n, p=METHOD_MIX)
    batch = rng.random(n) < np.where(METHODS[method] == "check", 0.55, BATCH_PAYER_RATE)
    run_weekday = rng.choice([1, 3, 4], size=n)  # Tue/Thu/Fri pay runs
    defaulted = rng.random(n) < params["default"]
    default_day = (s_day + np.floor((0.35 + 0.55 * rng.random(n)) * (e_day - s_day))).astype("int64")
    default_day = np.maximum(default_day, since + 90)
    defaulted &= default_day < e_day - 30
    default_day = np.where(defaulted, default_day, NEVER)
    hold_day = np.where(defaulted, default_day + _uniform_int(rng, 15, 60, n), NEVER)
    writeoff_day = np.where(defaulted, default_day + _uniform_int(rng, 120, 270, n), NEVER)
    # names: unique combinations where possible
    combos = len(NAME_A) * len(NAME_B)
    pick = rng.choice(combos, size=n, replace=n > combos)
    base = (pd.Series(np.array(NAME_A, dtype=object)[pick // len(NAME_B)]) + " "
            + pd.Series(np.array(NAME_B, dtype=object)[pick % len(NAME_B)]))
    dup = base.groupby(base, sort=False).cumcount().to_numpy()
    name = base + np.where(dup > 0, " " + pd.Series(dup + 1).astype(str), "") + " " + pd.Series(legal)
    # collectors: ~8, each serving one region; customers assigned within their region
    n_coll = int(min(N_COLLECTORS, max(1, -(-n // 5))))
    coll_region = np.array(COLLECTOR_REGIONS[:n_coll])
    collector = np.zeros(n, dtype="int64")
    for r, rname in enumerate(region_names):
        mask = region == r
        pool = np.flatnonzero(coll_region == rname)
        if pool.size == 0:
            pool = np.arange(n_coll)
        collector[mask] = pool[rng.integers(0, pool.size, mask.sum())]
    monthly = weight / weight.mean()  # rough share; refined once invoice counts are known
    return dict(
        n=n, seg=seg, params=params, region=region_names[region], country=country, currency=currency,
        bu=bu_names[bu], terms=terms, scale=scale, weight=weight, since=since, paperless=paperless,
        paperless_since=paperless_since, method=method, batch=batch, run_weekday=run_weekday,
        defaulted=defaulted, default_day=default_day, hold_day=hold_day, writeoff_day=writeoff_day,
        name=name.to_numpy(dtype=object), collector=collector, n_coll=n_coll, monthly=monthly,
        ids=_doc_ids("CUST-", np.arange(1, n + 1)).astype(object),
        coll_ids=np.array([f"COL{i + 1:02d}" for i in range(n_coll)], dtype=object),
    )


def _contact_responses(cust: dict, seed: int) -> np.ndarray:
    """Each customer's true response to a contact (own random stream: other draws are unchanged)."""
    rng = _rng(seed, 11)
    u = rng.random(cust["n"])
    lo = np.array([CONTACT_RESPONSE[SEGMENTS[k]][0] for k in cust["seg"]])
    hi = np.array([CONTACT_RESPONSE[SEGMENTS[k]][1] for k in cust["seg"]])
    return np.round(lo + (hi - lo) * u, 4)


def _contact_effect(cust: dict, docs: dict, pay: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Payment days after the dunning ladder's contacts (see :data:`CONTACT_STEPS`).

    Returns
    -------
    (pay, contact_day, contact_step)
        New payment day per document; the day and ladder step of the contact that moved it
        (``NEVER`` / -1 where none did).
    """
    rng = _rng(seed, 12)
    c, due, day = docs["c"], docs["due"], docs["day"]
    m = c.size
    r = cust["response"][c]
    new_pay = pay.copy()
    when_hit = np.full(m, NEVER, "int64")
    step_hit = np.full(m, -1, "int64")
    for k, (offset, _kind, weight) in enumerate(CONTACT_STEPS):
        when = _next_business_day(due + offset + _uniform_int(rng, 0, 4, m))
        hit = (step_hit < 0) & (when < new_pay) & (when >= day) & (rng.random(m) < r * weight)
        lag = _uniform_int(rng, CONTACT_LAG[0], CONTACT_LAG[1], m)
        new_pay = np.where(hit, np.minimum(new_pay, _next_business_day(when + lag)), new_pay)
        when_hit = np.where(hit, when, when_hit)
        step_hit = np.where(hit, k, step_hit)
    return new_pay, when_hit, step_hit


def contact_truth_frame(cust: dict) -> pd.DataFrame:
    """Ground truth of the contact effects as ``ledger_meta`` rows (no migration needed).

    One row ``truth.contact_response.<customer id>`` = the customer's response probability, and one
    row ``truth.contact_effects`` = JSON with the ladder weights and the payment lag.
    """
    keys = [TRUTH_RESPONSE_PREFIX + str(i) for i in cust["ids"]]
    values = [f"{v:.4f}" for v in cust["response"]]
    meta = json.dumps({"steps": [[o, k, w] for o, k, w in CONTACT_STEPS], "lag_days": list(CONTACT_LAG)},
                      separators=(",", ":"))
    return pd.DataFrame({"key": keys + [TRUTH_EFFECTS_KEY], "value": values + [meta]})


def contact_truth(conn: sa.Connection) -> tuple[dict[str, float], dict] | None:
    """The contact-effect ground truth of a generated ledger, or None when it was generated without it.

    Parameters
    ----------
    conn : sqlalchemy.Connection

    Returns
    -------
    (responses, effects) or None
        ``responses``: customer id -> probability that a contact gets its overdue items paid;
        ``effects``: ``{"steps": [[days after due, type, weight], ...], "lag_days": [lo, hi]}``.

    Example
    -------
    >>> truth = contact_truth(conn)                        # doctest: +SKIP
    >>> truth[0]["CUST-0001"], truth[1]["lag_days"]        # doctest: +SKIP
    (0.6312, [2, 6])
    """
    t = schema.ledger_meta
    rows = conn.execute(sa.select(t.c.key, t.c.value).where(t.c.key.like("truth.%"))).all()
    effects = next((v for k, v in rows if k == TRUTH_EFFECTS_KEY), None)
    if effects is None:
        return None
    n = len(TRUTH_RESPONSE_PREFIX)
    return {k[n:]: float(v) for k, v in rows if k.startswith(TRUTH_RESPONSE_PREFIX)}, json.loads(effects)


def _season_weights(s_day: int, e_day: int) -> np.ndarray:
    days = np.arange(s_day, e_day + 1)
    d64 = _dates(days)
    month = d64.astype("datetime64[M]")
    next_month = (month + 1).astype("datetime64[D]").astype("int64")
    to_month_end = next_month - days  # 1 on the last day of the month
    month_no = month.astype("int64") % 12 + 1
    wd = _weekday(days)
    w = np.where(wd < 5, 1.0, np.where(wd == 5, 0.08, 0.04))
    w *= np.where(to_month_end <= 3, 2.4, 1.0)                      # month-end invoicing peak
    quarter_end = np.isin(month_no, (3, 6, 9, 12))
    w *= np.where(quarter_end, 1.2, 1.0) * np.where(quarter_end & (to_month_end <= 7), 1.5, 1.0)
    w *= np.where((month_no == 12) & (to_month_end <= 10), 0.6, 1.0)  # holidays
    w *= np.where(month_no == 8, 0.85, 1.0)                           # summer lull
    w *= 1.0 + 0.07 * (days - s_day) / 365.25                         # growth
    return w


def _documents(cust: dict, n_inv: int, seed: int, s_day: int, e_day: int) -> dict:
    rng = _rng(seed, 2)
    n = cust["n"]
    counts = 1 + rng.multinomial(n_inv - n, cust["weight"] / cust["weight"].sum())
    c = np.repeat(np.arange(n), counts)
    w = _season_weights(s_day, e_day)
    cdf = np.cumsum(w) / w.sum()
    lo = np.clip(cust["since"], s_day, e_day) - s_day
    hi = np.clip(np.minimum(cust["hold_day"], e_day), s_day, e_day) - s_day
    hi = np.maximum(hi, lo)
    f_lo = np.where(lo > 0, cdf[np.maximum(lo - 1, 0)], 0.0)[c]
    f_hi = cdf[hi][c]
    u = f_lo + rng.random(c.size) * (f_hi - f_lo)
    inv_day = s_day + np.minimum(np.searchsorted(cdf, u, side="left"), hi[c])
    amount = np.maximum(np.round(cust["scale"][c] * np.exp(rng.normal(0.0, 0.6, c.size)) * 100), 1_000)
    amount = amount.astype("int64")
    # debit memos (freight, late fees): rare, small
    n_dm = int(rng.binomial(n_inv, DEBIT_MEMO_RATE))
    dm_src = np.sort(rng.choice(c.size, size=n_dm, replace=False)) if n_dm else np.zeros(0, "int64")
    dm_c = c[dm_src]
    dm_day = np.minimum(inv_day[dm_src] + _uniform_int(rng, 5, 40, n_dm), np.minimum(e_day, cust["hold_day"][dm_c]))
    dm_day = np.maximum(dm_day, inv_day[dm_src])
    dm_amount = np.maximum(np.round(amount[dm_src] * (0.02 + 0.08 * rng.random(n_dm))), 500).astype("int64")
    dm_ref = np.where(rng.random(n_dm) < 0.6, "Freight surcharge", "Late payment fee").astype(object)
    # all payable documents: invoices then debit memos
    doc_c = np.concatenate([c, dm_c])
    doc_day = np.concatenate([inv_day, dm_day])
    doc_amount = np.concatenate([amount, dm_amount])
    is_dm = np.concatenate([np.zeros(c.size, bool), np.ones(n_dm, bool)])
    terms = cust["terms"][doc_c]
    due = doc_day + np.where(is_dm, 15, terms)
    # document numbers in date order (then customer, then draw order): INV-0000001...
    po = rng.integers(100_000, 999_999, doc_c.size)
    has_po = (rng.random(doc_c.size) < 0.7) & ~is_dm
    ref = np.where(has_po, "PO " + pd.Series(po).astype(str).to_numpy(dtype=object), None).astype(object)
    ref[is_dm] = dm_ref
    order = np.lexsort((np.arange(doc_c.size), doc_c, doc_day, is_dm))
    doc_c, doc_day, doc_amount, is_dm, due, ref = (a[order] for a in (doc_c, doc_day, doc_amount, is_dm, due, ref))
    number = np.zeros(doc_c.size, dtype="int64")
    number[~is_dm] = np.arange(1, (~is_dm).sum() + 1)
    number[is_dm] = np.arange(1, is_dm.sum() + 1)
    ids = np.where(is_dm, _doc_ids("DM-", number), _doc_ids("INV-", number)).astype(object)
    return dict(c=doc_c, day=doc_day, due=due, amount=doc_amount, is_dm=is_dm, ids=ids, number=number, ref=ref)


def _payments(cust: dict, docs: dict, seed: int, s_day: int, e_day: int) -> dict:
    """Per document: when and how it is settled (cash tranches, credit memos, adjustments, disputes)."""
    rng = _rng(seed, 3)
    c, A, day, due = docs["c"], docs["amount"], docs["day"], docs["due"]
    m = c.size
    p = cust["params"]
    years = (day - s_day) / 365.25
    late = p["mean"][c] + p["drift"][c] * years + p["sd"][c] * rng.standard_normal(m)
    late += np.where(rng.random(m) < 0.03, 15 + 75 * rng.random(m), 0.0)  # lost paperwork, approvals...
    pay = np.maximum(due + np.round(late).astype("int64"), day)
    pay = _next_business_day(pay)
    contact_day = np.full(m, NEVER, "int64")
    contact_step = np.full(m, -1, "int64")
    if "response" in cust:  # opt-in contact effects (own random stream)
        pay, contact_day, contact_step = _contact_effect(cust, docs, pay, seed)
    # one event per document at most: dispute, partial payment, short payment or return
    u = rng.random(m)
    r_d = p["dispute"][c]
    r_p = r_d + p["partial"][c]
    r_s = r_p + SHORT_PAY_RATE
    r_r = r_s + RETURN_RATE
    ev = np.select([u < r_d, u < r_p, u < r_s, u < r_r], [1, 2, 3, 4], 0)
    ev[docs["is_dm"]] = 0
    t1_amt = A.copy()
    t2_amt = np.zeros(m, "int64")
    t2_day = np.full(m, NEVER, "int64")
    # partial payment: a second receipt 2-8 weeks later
    part = ev == 2
    frac = 0.3 + 0.4 * rng.random(m)
    t1_amt = np.where(part, np.floor(A * frac).astype("int64"), t1_amt)
    t2_amt = np.where(part, A - t1_amt, t2_amt)
    t2_day = np.where(part, pay + _uniform_int(rng, 14, 60, m), t2_day)
    # short payment: deduction posted as an adjustment (65%) or left open
    short = ev == 3
    ded = np.maximum(np.floor(A * (0.01 + 0.07 * rng.random(m))), 1).astype("int64")
    t1_amt = np.where(short, A - ded, t1_amt)
    ded_posted = short & (rng.random(m) < 0.65)
    ded_day = pay + _uniform_int(rng, 7, 45, m)
    ded_reason = DEDUCTION_REASONS[rng.integers(0, DEDUCTION_REASONS.size, m)]
    # return: credit memo, applied to the invoice if issued before payment, else left open (customer credit)
    ret = ev == 4
    cm_day = np.full(m, NEVER, "int64")
    cm_amt = np.zeros(m, "int64")
    cm_applied = np.zeros(m, bool)
    r_cm_day = day + _uniform_int(rng, 3, 40, m)
    r_cm_amt = np.maximum(np.floor(A * (0.05 + 0.35 * rng.random(m))), 1).astype("int64")
    cm_day = np.where(ret, r_cm_day, cm_day)
    cm_amt = np.where(ret, r_cm_amt, cm_amt)
    cm_applied |= ret & (r_cm_day < pay)
    t1_amt = np.where(ret & cm_applied, A - cm_amt, t1_amt)
    cm_reason = np.where(ret, "Return", None).astype(object)
    # disputes: undisputed part paid on schedule, the rest after resolution
    disp = ev == 1
    span = np.clip(pay - day, 2, 45)
    opened = day + 1 + np.floor(rng.random(m) * span).astype("int64")
    disp &= opened <= e_day
    reason = rng.choice(DISPUTE_REASONS.size, size=m, p=DISPUTE_REASON_MIX)
    full = DISPUTE_REASONS[reason] == "not_received"
    full |= DISPUTE_REASONS[reason] == "duplicate_billing"
    d_amt = np.where(full, A, np.maximum(np.floor(A * (0.1 + 0.5 * rng.random(m))), 1)).astype("int64")
    duration = np.round(np.exp(np.log(25) + 0.7 * rng.standard_normal(m))).astype("int64") + 1
    resolved = opened + duration
    outcome = rng.choice(DISPUTE_OUTCOMES.size, size=m, p=DISPUTE_OUTCOME_MIX)
    outcome = np.where(DISPUTE_REASONS[reason] == "duplicate_billing", 0, outcome)
    resolved_in = disp & (resolved <= e_day)
    after = np.maximum(pay, resolved + _uniform_int(rng, 3, 25, m))
    t1_amt = np.where(disp, A - d_amt, t1_amt)
    credit = resolved_in & (outcome == 0)
    d_cm = np.where(DISPUTE_REASONS[reason] == "pricing",
                    np.maximum(np.floor(d_amt * (0.5 + 0.5 * rng.random(m))), 1), d_amt).astype("int64")
    cm_day = np.where(credit, resolved, cm_day)
    cm_amt = np.where(credit, d_cm, cm_amt)
    cm_applied |= credit
    cm_reason = np.where(credit, "Dispute settlement", cm_reason).astype(object)
    disp_wo = resolved_in & (outcome == 4)
    t2_amt = np.where(disp, np.where(credit, d_amt - d_cm, np.where(disp_wo, 0, d_amt)), t2_amt)
    t2_day = np.where(disp, np.where(resolved_in, after, NEVER), t2_day)
    disp_adj_day = np.where(disp_wo, resolved, NEVER)
    # batch payers: payments wait for the customer's weekly pay run
    t1_day = pay
    t2_day = np.where(t2_amt > 0, np.maximum(t2_day, t1_day + 7), NEVER)
    batch = cust["batch"][c]
    run = cust["run_weekday"][c]
    t1_day = np.where(batch, t1_day + (run - _weekday(t1_day)) % 7, t1_day)
    t2_day = np.where(batch & (t2_day < NEVER), t2_day + (run - _weekday(t2_day)) % 7, t2_day)
    # defaults: nothing is paid, credited or adjusted after the default; later the rest is written off
    dflt = cust["default_day"][c]
    t1_amt = np.where(t1_day > dflt, 0, t1_amt)
    t2_amt = np.where(t2_day > dflt, 0, t2_amt)
    cm_keep = cm_day <= dflt
    cm_amt = np.where(cm_keep, cm_amt, 0)
    cm_applied &= cm_keep
    ded_posted &= ded_day <= dflt
    disp_wo &= disp_adj_day <= dflt
    # and nothing happens after the end of the history
    t1_amt = np.where(t1_day <= e_day, t1_amt, 0)
    t2_amt = np.where(t2_day <= e_day, t2_amt, 0)
    cm_exists = (cm_amt > 0) & (cm_day <= e_day)
    cm_applied &= cm_exists
    ded_posted &= ded_day <= e_day
    settled = (t1_amt + t2_amt + np.where(cm_applied, cm_amt, 0) + np.where(ded_posted, ded, 0)
               + np.where(disp_wo, d_amt, 0))
    wo_day = cust["writeoff_day"][c]
    write_off = np.where((wo_day <= e_day) & (A - settled > 0), A - settled, 0)
    # dispute records: resolution as simulated, or written off with the defaulted customer's items
    d_resolved = np.where(resolved_in & (resolved <= dflt), resolved, NEVER)
    d_outcome = outcome.copy()
    d_resolved = np.where((d_resolved == NEVER) & disp & (write_off > 0), wo_day, d_resolved)
    d_outcome = np.where(disp & (d_resolved == wo_day) & (write_off > 0), 4, d_outcome)
    open_end = A - settled - write_off
    last_cash = np.maximum(np.where(t1_amt > 0, t1_day, 0), np.where(t2_amt > 0, t2_day, 0))
    settle_day = np.where(open_end > 0, NEVER, np.where(write_off > 0, wo_day, np.maximum(last_cash, day)))
    return dict(
        ev=ev, t1_amt=t1_amt, t1_day=t1_day, t2_amt=t2_amt, t2_day=t2_day, ded=ded, ded_posted=ded_posted,
        ded_day=ded_day, ded_reason=ded_reason, cm_day=cm_day, cm_amt=cm_amt, cm_exists=cm_exists,
        cm_applied=cm_applied, cm_reason=cm_reason, disp=disp, opened=opened, reason=reason, d_amt=d_amt,
        d_resolved=d_resolved, d_outcome=d_outcome, disp_wo=disp_wo, disp_adj_day=disp_adj_day,
        write_off=write_off, wo_day=wo_day, open_end=open_end, settle_day=settle_day, late=late,
        contact_day=contact_day, contact_step=contact_step,
    )


def _remittance_tokens(rng: np.random.Generator, ids: np.ndarray, number: np.ndarray, is_dm: np.ndarray,
                       style: np.ndarray) -> np.ndarray:
    """Document reference as a payer would write it: 0 clean, 1 transposed digits, 2 no prefix, 3 space."""
    out = ids.copy()

    def padded(nums):
        return pd.Series(nums, dtype="int64").astype(str).str.zfill(7).to_numpy(dtype=object)

    prefix = np.where(is_dm, "DM", "INV").astype(object)
    # transposed digits: swap two adjacent significant digits
    t = np.flatnonzero(style == 1)
    if t.size:
        nums = number[t]
        sig = np.maximum(np.floor(np.log10(np.maximum(nums, 1))).astype("int64") + 1, 2)
        pos = np.floor(rng.random(t.size) * (sig - 1)).astype("int64")  # swap 10^pos and 10^(pos+1)
        a = (nums // 10 ** pos) % 10
        b = (nums // 10 ** (pos + 1)) % 10
        swapped = nums + (b - a) * 10 ** pos + (a - b) * 10 ** (pos + 1)
        out[t] = prefix[t] + "-" + padded(swapped)
    s2 = np.flatnonzero(style == 2)
    out[s2] = pd.Series(number[s2], dtype="int64").astype(str).to_numpy(dtype=object)
    s3 = np.flatnonzero(style == 3)
    out[s3] = prefix[s3] + " " + padded(number[s3])
    return out


def _receipts(cust: dict, docs: dict, pay: dict, seed: int, e_day: int) -> dict[str, pd.DataFrame]:
    rng = _rng(seed, 4)
    # cash tranches -> receipt lines
    doc = np.concatenate([np.flatnonzero(pay["t1_amt"] > 0), np.flatnonzero(pay["t2_amt"] > 0)])
    amt = np.concatenate([pay["t1_amt"][pay["t1_amt"] > 0], pay["t2_amt"][pay["t2_amt"] > 0]])
    day = np.concatenate([pay["t1_day"][pay["t1_amt"] > 0], pay["t2_day"][pay["t2_amt"] > 0]])
    c = docs["c"][doc]
    line = np.arange(doc.size)
    group = np.where(cust["batch"][c], -1, line)  # batch payers: one receipt per pay run
    order = np.lexsort((doc, group, c, day))
    doc, amt, day, c, group = doc[order], amt[order], day[order], c[order], group[order]
    new = np.ones(doc.size, bool)
    new[1:] = (day[1:] != day[:-1]) | (c[1:] != c[:-1]) | (group[1:] != group[:-1])
    rno = np.cumsum(new) - 1  # receipt index per line
    starts = np.flatnonzero(new)
    n_r = starts.size
    r_amt = np.add.reduceat(amt, starts) if n_r else np.zeros(0, "int64")
    r_day = day[starts]
    r_c = c[starts]
    r_lines = np.diff(np.append(starts, doc.size))
    r_ids = _doc_ids("RCT-", np.arange(1, n_r + 1))
    method = cust["method"][r_c].copy()
    other = rng.random(n_r) < 0.1
    method[other] = rng.choice(len(METHODS), size=other.sum(), p=METHOD_MIX)
    # cash application backlog at the end: recent receipts not yet (fully) applied
    age = e_day - r_day
    p_unapplied = np.where(age < 7, 0.55, np.where(age < 30, 0.06, 0.0))
    unapplied = rng.random(n_r) < p_unapplied
    part_applied = ~unapplied & (r_lines > 1) & (age < 14) & (rng.random(n_r) < 0.35)
    first_line = np.zeros(doc.size, bool)
    first_line[starts] = True
    applied_line = ~unapplied[rno] & (~part_applied[rno] | first_line)
    lag = rng.choice([0, 0, 0, 1, 2], size=n_r)
    applied_day = np.minimum(_next_business_day(r_day + lag), e_day)
    applied_day = np.maximum(applied_day, r_day)
    # remittance text
    style_r = rng.choice(6, size=n_r, p=[0.58, 0.08, 0.06, 0.05, 0.15, 0.08])  # 0-3 tokens, 4 missing, 5 partial list
    tok_style = np.where(style_r[rno] <= 3, style_r[rno], 0)
    tokens = _remittance_tokens(rng, docs["ids"][doc], docs["number"][doc], docs["is_dm"][doc], tok_style)
    line_in_r = line - starts[rno]
    listed = (style_r[rno] != 5) | (line_in_r < np.maximum(r_lines[rno] // 2, 1))
    # one token per single-line receipt; multi-line receipts join their listed tokens (loop per receipt)
    joined = np.empty(n_r, dtype=object)
    joined[r_lines == 1] = tokens[starts[r_lines == 1]]
    multi = np.flatnonzero(r_lines > 1)
    if multi.size:
        sel = (r_lines[rno] > 1) & listed
        parts = np.split(tokens[sel], np.cumsum(np.bincount(rno[sel], minlength=n_r)[multi])[:-1])
        joined[multi] = [", ".join(p) for p in parts]
    # "Payment for ..." on multi-line receipts and on style 5; missing remittance on style 4
    text = joined
    wrap = np.flatnonzero((r_lines > 1) | (style_r == 5))
    text[wrap] = [f"Payment for {t}" for t in joined[wrap]]
    miss = np.flatnonzero(style_r == 4)
    miss_kind = rng.integers(0, 4, miss.size)
    month_name = MONTHS[_dates(r_day[miss]).astype("datetime64[M]").astype("int64") % 12]
    vague = np.full(miss.size, "REMITTANCE ADVICE", dtype=object)
    vague[miss_kind == 0] = None
    vague[miss_kind == 1] = np.char.add(month_name[miss_kind == 1], " payment").astype(object)
    vague[miss_kind == 2] = "Payment on account"
    text[miss] = vague
    unidentified = unapplied & (style_r == 4) & (rng.random(n_r) < 0.3)
    r_cust = np.where(unidentified, None, cust["ids"][r_c]).astype(object)
    receipts = _frame({
        "id": r_ids, "customer_id": r_cust, "receipt_date": _dates(r_day), "amount_cents": r_amt,
        "currency": cust["currency"][r_c], "method": METHODS[method], "remittance_ref": text,
    })
    truth = _frame({"receipt_id": r_ids[rno], "invoice_id": docs["ids"][doc], "amount_cents": amt})
    cash_apps = _frame({
        "receipt_id": r_ids[rno][applied_line], "credit_memo_id": None, "invoice_id": docs["ids"][doc][applied_line],
        "amount_cents": amt[applied_line], "applied_date": _dates(applied_day[rno][applied_line]),
    })
    return {"receipts": receipts, "receipt_truth": truth, "_cash_apps": cash_apps,
            "_receipt_flags": _frame({"unapplied": unapplied, "partial": part_applied})}


def _collections(cust: dict, docs: dict, pay: dict, seed: int, e_day: int) -> dict[str, pd.DataFrame]:
    """Promises to pay and collection activities on overdue items."""
    rng = _rng(seed, 5)
    c, due, settle = docs["c"], docs["due"], pay["settle_day"]
    m = c.size
    seg = cust["seg"][c]
    coll = cust["coll_ids"][cust["collector"][c]]
    overdue_days = np.minimum(settle, e_day + 1) - due  # days the item was overdue within the history
    # promises: made on an overdue item, promised a few days to weeks later; kept when paid by then
    made = _next_business_day(due + _uniform_int(rng, 5, 35, m))
    promised = made + _uniform_int(rng, 3, 21, m)
    cash_left = np.where(pay["t1_day"] > made, pay["t1_amt"], 0) + np.where(pay["t2_day"] > made, pay["t2_amt"], 0)
    cash_left = np.where(settle == NEVER, np.maximum(cash_left, pay["open_end"]), cash_left)
    p_promise = np.where(SEGMENTS_ARR[seg] == "early", 0.1, PROMISE_RATE)
    has_promise = (made < settle) & (made <= e_day) & (overdue_days > 10) & (cash_left > 0)
    has_promise &= rng.random(m) < p_promise
    pi = np.flatnonzero(has_promise)
    promises = _frame({
        "customer_id": cust["ids"][c[pi]], "invoice_id": docs["ids"][pi], "made_on": _dates(made[pi]),
        "promised_date": _dates(promised[pi]), "amount_cents": cash_left[pi], "recorded_by": coll[pi],
    })
    # dunning ladder: email reminder, call, letter (portal for paperless customers), escalation
    steps = [(3, "email", ("reminder_sent", "reminder_sent", "replied")),
             (15, "call", ("no_answer", "left_voicemail", "reached", "reached")),
             (30, "letter", ("second_notice_sent",)),
             (45, "call", ("no_answer", "left_voicemail", "reached", "reached", "referred_to_ap")),
             (70, "escalation", ("escalated_to_manager", "credit_hold"))]
    frames = []
    paperless = cust["paperless"][c]
    for k, (offset, kind, outcomes) in enumerate(steps):
        when = _next_business_day(due + offset + _uniform_int(rng, 0, 4, m))
        ok = (when < settle) & (when <= e_day) & (rng.random(m) < 0.85)
        idx = np.flatnonzero(ok)
        types = np.full(idx.size, kind, dtype=object)
        if kind == "letter":
            types = np.where(paperless[idx], "portal", "letter").astype(object)
        outs = np.array(outcomes, dtype=object)[rng.integers(0, len(outcomes), idx.size)]
        if kind == "letter":
            outs = np.where(types == "portal", "portal_reminder_posted", outs).astype(object)
        frames.append((idx, when[idx], types, outs, k))
    # a call on the day each promise was made, and a note when a dispute is opened
    frames.append((pi, made[pi], np.full(pi.size, "call", dtype=object),
                   np.full(pi.size, "promise_to_pay", dtype=object), 5))
    di = np.flatnonzero(pay["disp"])
    frames.append((di, pay["opened"][di], np.full(di.size, "note", dtype=object),
                   np.full(di.size, "dispute_opened", dtype=object), 6))
    if "contact_day" in pay:  # contact effects: the contact that moved a payment, as it happened
        hi = np.flatnonzero((pay["contact_step"] >= 0) & (pay["contact_day"] <= e_day))
        kinds = np.array([k for _o, k, _w in CONTACT_STEPS], dtype=object)[pay["contact_step"][hi]]
        kinds = np.where((kinds == "letter") & paperless[hi], "portal", kinds).astype(object)
        frames.append((hi, pay["contact_day"][hi], kinds, np.full(hi.size, "reached", dtype=object),
                       pay["contact_step"][hi]))
    idx = np.concatenate([f[0] for f in frames])
    when = np.concatenate([f[1] for f in frames])
    types = np.concatenate([f[2] for f in frames])
    outs = np.concatenate([f[3] for f in frames])
    step = np.concatenate([np.full(f[0].size, f[4]) for f in frames])
    # collectors work accounts, not documents: one dunning contact of a kind per customer and week
    # (about the oldest item); promise calls and dispute notes are kept one per item
    ladder = step < 5
    week = np.where(ladder, (when + 3) // 7, -1 - np.arange(when.size))
    order = np.lexsort((idx, when, week, step, c[idx]))
    ck, sk, wk = c[idx][order], step[order], week[order]
    first = np.ones(order.size, bool)
    first[1:] = (ck[1:] != ck[:-1]) | (sk[1:] != sk[:-1]) | (wk[1:] != wk[:-1])
    keep = np.sort(order[first])
    idx, when, types, outs, step = idx[keep], when[keep], types[keep], outs[keep], step[keep]
    order = np.lexsort((step, idx, when))
    idx, when, types, outs = idx[order], when[order], types[order], outs[order]
    minutes = _uniform_int(rng, 8 * 60, 17 * 60 + 59, idx.size)
    occurred = _dates(when).astype("datetime64[s]") + (minutes * 60).astype("timedelta64[s]")
    activities = _frame({
        "customer_id": cust["ids"][c[idx]], "invoice_id": docs["ids"][idx], "occurred_at": occurred,
        "collector_id": coll[idx], "type": types, "outcome": outs, "note": None,
    })
    return {"promises": promises, "activities": activities}


SEGMENTS_ARR = np.array(SEGMENTS)


def _static_frames(cust: dict, docs: dict, pay: dict) -> dict[str, pd.DataFrame]:
    c = docs["c"]
    n_coll = cust["n_coll"]
    collectors = _frame({
        "id": cust["coll_ids"], "name": COLLECTOR_NAMES[:n_coll],
        "email": [n.lower().replace(" ", ".") + "@example.com" for n in COLLECTOR_NAMES[:n_coll]],
        "active": True,
    })
    # credit limit: about 2.5 months of the customer's billing, rounded up to 5,000 units
    billed = np.bincount(c, weights=docs["amount"], minlength=cust["n"])
    months = max((docs["day"].max() - docs["day"].min()) / 30.4, 1.0)
    limit = np.ceil(billed / months * 2.5 / 500_000) * 500_000
    customers = _frame({
        "id": cust["ids"], "name": cust["name"], "country": cust["country"], "region": cust["region"],
        "business_unit": cust["bu"], "currency": cust["currency"], "credit_limit_cents": limit.astype("int64"),
        "payment_terms_days": cust["terms"], "collector_id": cust["coll_ids"][cust["collector"]],
        "paperless": cust["paperless"],
        "paperless_since": pd.Series(_dates(cust["paperless_since"])).where(cust["paperless"]),
        "customer_since": _dates(cust["since"]),
        # demo contact for dunning e-mail; example.com is reserved (RFC 2606): nothing is ever delivered
        "email": [f"ap.{str(i).lower()}@example.com" for i in cust["ids"]],
    })
    p = cust["params"]
    truth = _frame({
        "customer_id": cust["ids"], "segment": SEGMENTS_ARR[cust["seg"]], "mean_days_late": p["mean"],
        "sd_days_late": p["sd"], "drift_days_per_year": p["drift"], "default_probability": p["default"],
        "partial_payment_rate": p["partial"], "dispute_rate": p["dispute"],
    })
    # invoices + debit memos, then credit memos
    cur = cust["currency"][c]
    inv = _frame({
        "id": docs["ids"], "customer_id": cust["ids"][c], "doc_type": np.where(docs["is_dm"], "debit_memo", "invoice"),
        "invoice_date": _dates(docs["day"]), "due_date": _dates(docs["due"]), "amount_cents": docs["amount"],
        "currency": cur, "reference": docs["ref"],
    })
    ci = np.flatnonzero(pay["cm_exists"])
    ci = ci[np.lexsort((ci, pay["cm_day"][ci]))]
    cm_ids = _doc_ids("CM-", np.arange(1, ci.size + 1))
    cms = _frame({
        "id": cm_ids, "customer_id": cust["ids"][c[ci]], "doc_type": "credit_memo",
        "invoice_date": _dates(pay["cm_day"][ci]), "due_date": _dates(pay["cm_day"][ci]),
        "amount_cents": -pay["cm_amt"][ci], "currency": cur[ci],
        "reference": pay["cm_reason"][ci] + " " + docs["ids"][ci],
    })
    invoices = pd.concat([inv, cms], ignore_index=True)
    ai = pay["cm_applied"][ci]
    credit_apps = _frame({
        "receipt_id": None, "credit_memo_id": cm_ids[ai], "invoice_id": docs["ids"][ci[ai]],
        "amount_cents": pay["cm_amt"][ci[ai]], "applied_date": _dates(pay["cm_day"][ci[ai]]),
    })
    # adjustments: deductions, dispute concessions, write-offs
    coll = cust["coll_ids"][cust["collector"][c]]
    di = np.flatnonzero(pay["ded_posted"])
    dw = np.flatnonzero(pay["disp_wo"])
    wi = np.flatnonzero(pay["write_off"] > 0)
    adjustments = pd.concat([
        _frame({"invoice_id": docs["ids"][di], "adj_date": _dates(pay["ded_day"][di]),
                      "amount_cents": -pay["ded"][di], "kind": "deduction",
                      "reason": "Short payment: " + pay["ded_reason"][di].astype(object), "created_by": coll[di]}),
        _frame({"invoice_id": docs["ids"][dw], "adj_date": _dates(pay["disp_adj_day"][dw]),
                      "amount_cents": -pay["d_amt"][dw], "kind": "adjustment",
                      "reason": "Dispute concession: " + DISPUTE_REASONS[pay["reason"][dw]].astype(object),
                      "created_by": coll[dw]}),
        _frame({"invoice_id": docs["ids"][wi], "adj_date": _dates(pay["wo_day"][wi]),
                      "amount_cents": -pay["write_off"][wi], "kind": "write_off",
                      "reason": "Bad debt: customer default", "created_by": coll[wi]}),
    ], ignore_index=True)
    adjustments = adjustments.sort_values(["adj_date", "invoice_id", "kind"], kind="stable", ignore_index=True)
    xi = np.flatnonzero(pay["disp"])
    res = pay["d_resolved"][xi]
    resolved = res < NEVER
    disputes = _frame({
        "invoice_id": docs["ids"][xi], "customer_id": cust["ids"][c[xi]], "opened_date": _dates(pay["opened"][xi]),
        "reason_code": DISPUTE_REASONS[pay["reason"][xi]], "amount_cents": pay["d_amt"][xi],
        "resolved_date": pd.Series(_dates(np.where(resolved, res, 0))).where(resolved),
        "outcome": pd.Series(DISPUTE_OUTCOMES[pay["d_outcome"][xi]], dtype=object).where(resolved),
        "created_by": coll[xi],
    })
    disputes = disputes.sort_values(["opened_date", "invoice_id"], kind="stable", ignore_index=True)
    return {"collectors": collectors, "customers": customers, "customer_truth": truth, "invoices": invoices,
            "adjustments": adjustments, "disputes": disputes, "_credit_apps": credit_apps}


def _finish(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    apps = pd.concat([frames.pop("_cash_apps"), frames.pop("_credit_apps")], ignore_index=True)
    apps = apps.sort_values(["applied_date", "invoice_id", "receipt_id", "credit_memo_id"], kind="stable",
                            na_position="last", ignore_index=True)
    apps["source"] = "import"
    frames["applications"] = apps
    return frames


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
def _for_dialect(frame: pd.DataFrame, table: sa.Table, dialect: str) -> pd.DataFrame:
    """Python ``date`` objects for Date columns outside DuckDB (drivers want dates, not timestamps)."""
    if dialect == "duckdb":
        return frame
    out = frame.copy()
    for col in out.columns:
        if isinstance(table.c[col].type, sa.Date) and not isinstance(table.c[col].type, sa.DateTime):
            out[col] = pd.Series([None if pd.isna(v) else v.date() for v in out[col]], dtype=object)
    return out


def _clear_ledger(conn: sa.Connection) -> None:
    """Empty the ledger tables inside the caller's transaction.

    DuckDB cannot delete parent rows whose children were deleted in the same transaction (its
    foreign-key checks still see them), so there the tables are dropped and re-created from the
    catalog's own DDL (transactional in DuckDB); elsewhere rows are deleted children first.
    """
    tables = _ledger_tables_to_clear()
    summaries.forget(conn)  # rebuilt by the write's version bump
    if conn.dialect.name != "duckdb":
        for t in tables:
            conn.execute(t.delete())
        return
    db.recreate_duckdb_tables(conn, [t.name for t in tables])


def _table_counts(conn: sa.Connection, tables) -> dict[str, int]:
    return {t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()) for t in tables}


def write_frames(engine: sa.Engine, frames: dict[str, pd.DataFrame], replace: bool = False,
                 progress: Progress | None = None, file_name: str | None = None, actor: str = "system") -> dict:
    """Write generated frames in ONE transaction: import batch, ledger rows, ledger version bump.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        A migrated ledger (:func:`analytics.db.connect`).
    frames : dict
        From :func:`build_frames`.
    replace : bool
        Empty the ledger tables first (same transaction). Without it a database that already holds
        invoices is refused with :class:`UserError`. Users, audit log and import history are kept;
        collectors referenced by users are updated in place.
    progress : callable(fraction, message), optional
    file_name : str, optional
        Description stored in ``import_batches.file_name``.
    actor : str, default "system"
        Who generates; a replacement of an existing ledger is recorded in the audit log under this
        name (``generate_replace``: row counts per table before and after), in the same transaction.

    Returns
    -------
    dict
        ``import_batch_id``, ``ledger_version`` and rows written per table.
    """
    report = progress or (lambda fraction, message: None)
    counts: dict[str, int] = {}
    db.require_writable(engine, "generate a ledger")
    with db.bulk_write(engine) as conn:
        dialect = conn.dialect.name
        existing = conn.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar()
        if existing and not replace:
            raise UserError(f"the database already holds {existing} invoices; use --replace to overwrite the ledger")
        replaced = None
        if replace and existing:
            audit.lock_chain(conn)  # the audit entry below: take the chain's lock first, as every writer does
            replaced = _table_counts(conn, [*_ledger_tables_to_clear(), schema.collectors])
        if replace:
            report(0.62, "clearing the old ledger")
            _clear_ledger(conn)
            used = sa.select(schema.users.c.collector_id).where(schema.users.c.collector_id.is_not(None))
            conn.execute(schema.collectors.delete().where(schema.collectors.c.id.not_in(used)))
        batch = conn.execute(
            schema.import_batches.insert().values(
                loaded_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0),
                source="generator", file_name=file_name, rows_inserted=0, rows_skipped=0,
            ).returning(schema.import_batches.c.id)
        ).scalar_one()
        kept = {r[0] for r in conn.execute(sa.select(schema.collectors.c.id))}
        for i, name in enumerate(_WRITE_ORDER):
            report(0.62 + 0.36 * i / len(_WRITE_ORDER), f"writing {name}")
            table = schema.metadata.tables[name]
            frame = frames[name]
            if name == "collectors" and kept:
                t = schema.collectors
                for row in frame[frame.id.isin(kept)].itertuples(index=False):
                    conn.execute(t.update().where(t.c.id == row.id).values(name=row.name, email=row.email, active=True))
                frame = frame[~frame.id.isin(kept)]
            if name in ("invoices", "receipts"):
                frame = frame.assign(import_batch_id=batch)
            counts[name] = db.bulk_insert(conn, table, _for_dialect(frame, table, dialect))
        # ground truth of the previous generated ledger goes with it; this one's (if any) is written
        conn.execute(schema.ledger_meta.delete().where(schema.ledger_meta.c.key.like("truth.%")))
        if "ledger_meta" in frames:
            counts["ledger_meta"] = db.bulk_insert(conn, schema.ledger_meta, frames["ledger_meta"])
        conn.execute(schema.import_batches.update().where(schema.import_batches.c.id == batch)
                     .values(rows_inserted=sum(counts.values())))
        if replaced is not None:
            audit.append_audit(conn, actor, "generate_replace", "ledger", batch, {"rows": replaced},
                               {"rows": _table_counts(conn, [*_ledger_tables_to_clear(), schema.collectors]),
                                "file_name": file_name})
        version = db.bump_ledger_version(conn)
    report(1.0, "done")
    return {"import_batch_id": int(batch), "ledger_version": version, "rows": counts}


def generate(engine: sa.Engine, customers: int = 400, invoices: int = 40_000, seed: int = 42,
             end: dt.date = DEFAULT_END, months: int = 24, progress: Progress | None = None,
             replace: bool = False, actor: str = "system", contact_effects: bool = False) -> dict:
    """Generate a seeded synthetic AR ledger and write it to ``engine`` in one transaction.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        A migrated ledger (:func:`analytics.db.connect`).
    customers, invoices : int
        Number of customers and of invoices (``invoices >= customers >= 1``); credit memos, debit
        memos, receipts and the rest follow from the simulated behaviour.
    seed : int
        Random seed. Same arguments give a byte-identical ledger.
    end : datetime.date
        Last day of the history (default 2026-10-31); today's date is never used.
    months : int
        Length of the history in months (default 24), ending with ``end``'s month.
    progress : callable(fraction, message), optional
        Called with a fraction in [0, 1] as the work advances (for a progress bar).
    replace : bool
        Overwrite an existing ledger (same transaction) instead of refusing.
    actor : str, default "system"
        Who generates (the audit entry of a replacement names them).
    contact_effects : bool
        Contacts change payment behaviour with seeded, recorded effects (:func:`build_frames`);
        needed by ``risk policy-backtest``.

    Returns
    -------
    dict
        Summary (JSON-ready): seed, start, end, counts per document type and table (write-offs, open
        disputes, unapplied and partially applied receipts), import batch id, ledger version, and
        ``build_seconds`` / ``write_seconds``.

    Raises
    ------
    UserError
        Bad arguments, or a database that already holds invoices without ``replace``.

    Example
    -------
    >>> from analytics import db
    >>> engine = db.connect("duckdb:///:memory:")
    >>> generate(engine, customers=5, invoices=50, seed=7)["customers"]
    5
    """
    t0 = time.perf_counter()
    frames = _finish(build_frames(customers, invoices, seed, end, months, progress, contact_effects))
    flags = frames.pop("_receipt_flags")
    t1 = time.perf_counter()
    written = write_frames(engine, frames, replace=replace, progress=progress, actor=actor,
                           file_name=f"generate --customers {customers} --invoices {invoices} --seed {seed} "
                                     f"--end {end.isoformat()} --months {months}"
                                     + (" --contact-effects" if contact_effects else ""))
    t2 = time.perf_counter()
    return summarize(frames, flags, seed=seed, start=_month_start(end, months - 1), end=end,
                     extra={**{k: v for k, v in written.items() if k != "rows"},
                            "build_seconds": round(t1 - t0, 3), "write_seconds": round(t2 - t1, 3)})


def summarize(frames: dict[str, pd.DataFrame], flags: pd.DataFrame, seed: int, start: dt.date, end: dt.date,
              extra: dict | None = None) -> dict:
    """JSON-ready summary of generated frames (counts, AR at the end)."""
    inv = frames["invoices"]
    doc_counts = inv["doc_type"].value_counts()
    return {
        "seed": seed, "start": start.isoformat(), "end": end.isoformat(),
        "customers": len(frames["customers"]), "collectors": len(frames["collectors"]),
        "invoices": int(doc_counts.get("invoice", 0)), "credit_memos": int(doc_counts.get("credit_memo", 0)),
        "debit_memos": int(doc_counts.get("debit_memo", 0)), "receipts": len(frames["receipts"]),
        "applications": len(frames["applications"]), "adjustments": len(frames["adjustments"]),
        "write_offs": int((frames["adjustments"]["kind"] == "write_off").sum()),
        "disputes": len(frames["disputes"]), "open_disputes": int(frames["disputes"]["outcome"].isna().sum()),
        "promises": len(frames["promises"]), "activities": len(frames["activities"]),
        "unapplied_receipts": int(flags["unapplied"].sum()), "partially_applied_receipts": int(flags["partial"].sum()),
        **(extra or {}),
    }


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def configure_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics generate``."""
    from analytics.cli_support import date_arg

    parser.add_argument("--customers", type=int, default=400, help="number of customers (default 400)")
    parser.add_argument("--invoices", type=int, default=40_000, help="number of invoices (default 40000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--end", type=date_arg, default=DEFAULT_END,
                        help=f"last day of the history (default {DEFAULT_END.isoformat()})")
    parser.add_argument("--months", type=int, default=24, help="months of history (default 24)")
    parser.add_argument("--demo-users", action="store_true", help="also create the demo dashboard users")
    parser.add_argument("--contact-effects", action="store_true",
                        help="contacts change when customers pay (seeded, recorded as ground truth in ledger_meta; "
                             "needed by `risk policy-backtest`)")
    parser.add_argument("--replace", action="store_true", help="overwrite a database that already holds a ledger")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    _validate(args.customers, args.invoices, args.seed, args.end, args.months)
    engine = db.connect(args.db or db.default_url())
    try:
        summary = generate(engine, customers=args.customers, invoices=args.invoices, seed=args.seed, end=args.end,
                           months=args.months, replace=args.replace, actor="cli",
                           contact_effects=args.contact_effects)
        if args.demo_users:
            summary["demo_users"] = _demo_users(engine)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(f"generated {summary['customers']} customers, {summary['invoices']} invoices "
              f"(+{summary['credit_memos']} credit / {summary['debit_memos']} debit memos), "
              f"{summary['receipts']} receipts, {summary['disputes']} disputes, {summary['activities']} activities, "
              f"{summary['write_offs']} write-offs, {summary['unapplied_receipts']} unapplied receipts; "
              f"{summary['start']}..{summary['end']}, seed {summary['seed']}, "
              f"{summary['build_seconds'] + summary['write_seconds']:.1f}s")
    return 0


def _demo_users(engine: sa.Engine) -> list[str]:
    from analytics import auth

    return [u["username"] for u in auth.create_demo_users(engine)]
