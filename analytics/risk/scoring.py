"""Training on a ledger's own history, and scoring accounts and open invoices at a date.

Training at ``as_of`` only uses ledger data dated before ``as_of``:

* account model — customers at snapshot dates every 30 days (the last one 91 days before ``as_of``,
  so its 90-day label window is complete), features as of the snapshot, label = "a balance more
  than 60 days past due at some day within the next 90 days";
* invoice model — invoices issued in the :data:`TRAIN_INVOICE_DAYS` days before ``as_of`` whose outcome
  is known at ``as_of``, features as of the invoice date, label = "paid more than ``late_days`` days
  late or not at all"; the days-to-pay model uses the paid ones.

With too little history (fewer than ``MIN_TRAIN_ROWS`` labelled rows or one class) the
:class:`~analytics.risk.models.HeuristicRiskScorer` is used instead, and ``RiskModel.method`` says so.

**Bounded training set.** Each model trains on at most ``max_training_rows`` candidate points
(default :data:`MAX_TRAINING_ROWS`), chosen before any feature is computed so the cost (the
(point, prior item) history join) scales with the sample, not with the ledger:

* account snapshots — whole customers, in a seeded hash order (BLAKE2b of
  ``"<random_state>:<customer_id>"``), while their snapshots fit in the budget (:func:`training_sample`);
* invoices — every customer keeps up to ``k`` invoices evenly spread over its history, ``k`` as
  large as the budget allows (:func:`invoice_sample`), so the model still sees every customer.

Small ledgers (at most ``max_training_rows`` points per model) use every point, exactly as before.
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import threading
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics import db
from analytics.ledger import NO_FILTER, LedgerFilter, open_items, receivable
from analytics.risk import explain
from analytics.risk.lateness import late_payment_days
from analytics.risk import features as F
from analytics.risk.models import (MIN_TRAIN_ROWS, DaysToPayRegressor, DelinquencyClassifier,
                                   HeuristicRiskScorer, RiskModel, band, reference_values)

TRAIN_INVOICE_DAYS = 548
SNAPSHOT_EVERY_DAYS = 30
SNAPSHOTS = 24
DEFAULT_LATE_DAYS = 30
MAX_TRAINING_ROWS = 25_000
"""Default bound on the candidate rows each model (account, invoice) trains on; see :func:`training_sample`."""


def training_sample(counts: pd.Series, max_rows: int | None, random_state: int = 0) -> list[str] | None:
    """Customers whose points form a training set of at most ``max_rows`` rows (deterministic).

    Customers are ordered by ``BLAKE2b("<random_state>:<customer_id>")`` (stable across runs,
    platforms and databases) and taken in that order while their points fit in the budget; a
    customer whose points would overflow it is skipped and the next one tried. Whole customers are
    kept so each sampled account keeps its full history and all its snapshots/invoices.

    Parameters
    ----------
    counts : pandas.Series
        Candidate points per customer (index = customer id).
    max_rows : int or None
        The budget. None (or a budget not smaller than the total) means "no sampling".
    random_state : int
        Seed of the hash order.

    Returns
    -------
    list of str or None
        The sampled customer ids (sorted), or None when every point fits (use them all).

    Example
    -------
    >>> training_sample(pd.Series({"A": 3, "B": 2, "C": 4}), 5) is not None
    True
    >>> training_sample(pd.Series({"A": 3, "B": 2}), 5) is None
    True
    """
    if max_rows is None or int(counts.sum()) <= max_rows:
        return None
    if max_rows < 1:
        raise ValueError("max_training_rows must be a positive number of rows (or None for no bound)")
    keys = [hashlib.blake2b(f"{random_state}:{c}".encode(), digest_size=8).digest() for c in counts.index]
    order = sorted(range(len(keys)), key=lambda i: (keys[i], str(counts.index[i])))
    chosen, used = [], 0
    values = counts.to_numpy()
    for i in order:
        n = int(values[i])
        if n <= 0 or used + n > max_rows:
            continue
        chosen.append(str(counts.index[i]))
        used += n
        if used == max_rows:
            break
    return sorted(chosen)


def invoice_sample(counts: pd.Series, max_rows: int | None, random_state: int = 0) -> dict | None:
    """How to cut the invoice training points to at most ``max_rows``, keeping as many customers as possible.

    The invoice model learns "how does THIS customer pay": many customers with a few invoices each
    generalise better than a few customers with all theirs. So every customer keeps up to ``k``
    invoices, evenly spread over its history (:func:`~analytics.risk.features.invoice_points`
    ``per_customer``), with ``k`` the largest number such that ``sum(min(n_c, k)) <= max_rows``. When
    there are more customers than ``max_rows`` (``k`` would be 0), ``max_rows`` customers are
    sampled by the seeded hash order of :func:`training_sample`, one invoice each.

    Parameters
    ----------
    counts : pandas.Series
        Candidate invoices per customer.
    max_rows : int or None
    random_state : int
        Seed (hash order of customers, offset of the evenly spread invoices).

    Returns
    -------
    dict or None
        None when every invoice fits; else ``{"customer_ids": list or None (all), "per_customer": k,
        "offset": random_state}`` (keyword arguments of ``invoice_points``).

    Example
    -------
    >>> invoice_sample(pd.Series({"A": 10, "B": 2, "C": 5}), 9)
    {'customer_ids': None, 'per_customer': 3, 'offset': 0}
    """
    if max_rows is None or int(counts.sum()) <= max_rows:
        return None
    if max_rows < 1:
        raise ValueError("max_training_rows must be a positive number of rows (or None for no bound)")
    values = np.sort(counts.to_numpy().astype("int64"))
    lo, hi = 0, int(values[-1])
    while lo < hi:  # largest k with sum(min(n, k)) <= max_rows
        mid = (lo + hi + 1) // 2
        if int(np.minimum(values, mid).sum()) <= max_rows:
            lo = mid
        else:
            hi = mid - 1
    if lo >= 1:
        return {"customer_ids": None, "per_customer": lo, "offset": int(random_state)}
    ids = training_sample(pd.Series(1, index=counts.index[counts > 0]), max_rows, random_state)
    return {"customer_ids": ids, "per_customer": 1, "offset": int(random_state)}


def point_counts(conn: sa.Connection, points) -> pd.Series:
    """Candidate points per customer of a points subquery (one small GROUP BY).

    The input of :func:`training_sample` and :func:`invoice_sample`: they choose the training sample
    from these counts before any feature is computed.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    points : sqlalchemy.Subquery
        A points subquery with a ``customer_id`` column (``features.snapshot_points`` or
        ``features.invoice_points``).

    Returns
    -------
    pandas.Series
        int64 counts indexed by customer id (customers without a point are absent).

    Example
    -------
    >>> point_counts(conn, F.invoice_points(None, dt.date(2026, 1, 1))).sum()  # doctest: +SKIP
    3921
    """
    rows = conn.execute(sa.select(points.c.customer_id, sa.func.count()).group_by(points.c.customer_id)).all()
    return pd.Series({str(c): int(n) for c, n in rows}, dtype="int64")


def snapshot_dates(first: dt.date | None, as_of: dt.date, every: int = SNAPSHOT_EVERY_DAYS,
                   count: int = SNAPSHOTS, horizon: int = 90) -> list[dt.date]:
    """Training snapshot dates: every ``every`` days back from ``as_of − horizon − 1``, not before ``first``."""
    last = as_of - dt.timedelta(days=horizon + 1)
    dates = [last - dt.timedelta(days=every * k) for k in range(count)]
    return sorted(d for d in dates if first is None or d > first)


def invoice_training_frame(conn: sa.Connection, start: dt.date | None, end: dt.date, outcome_cutoff: dt.date,
                           late_days: int, customer_ids=None, per_customer: int | None = None,
                           offset: int = 0) -> pd.DataFrame:
    """Invoice features (as of each invoice date) with outcomes seen at ``outcome_cutoff``.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    start, end : datetime.date
        Invoices dated ``start <= invoice_date < end`` (``start`` None: from the first).
    outcome_cutoff : datetime.date
        Outcomes use settlements dated before this date.
    late_days : int
    customer_ids, per_customer, offset
        A training sample (see :func:`invoice_sample` and ``features.invoice_points``).

    Returns
    -------
    pandas.DataFrame
        Indexed by invoice id, ordered by invoice date: INVOICE_FEATURES plus ``customer_id, invoice_date,
        label, known, paid, days_to_pay, days_late``.
    """
    pts = F.invoice_points(start, end, customer_ids, per_customer, offset)
    hist = F.history_frame(conn, pts)
    attrs = F.invoice_attributes(conn, pts)
    frame = F.add_invoice_features(hist, attrs, on="point_id")
    out = F.invoice_outcomes(conn, outcome_cutoff, points=pts)
    label, known = F.late_label(out, late_days)
    frame = frame.join(pd.DataFrame({"label": label.astype(int), "known": known, "paid": out["paid"],
                                     "days_to_pay": out["days_to_pay"], "days_late": out["days_late"]}),
                       how="left")
    frame["known"] = frame["known"].fillna(False).astype(bool)
    # Invoice id breaks ties so the row order (and the unshuffled calibration folds) never depends
    # on the order the database returned the rows in.
    return frame.rename_axis("invoice_id").sort_values(["invoice_date", "invoice_id"], kind="stable")


def fit_classifier(X: pd.DataFrame, y: np.ndarray, features, max_iter: int, random_state: int):
    """Fit the delinquency classifier, or the heuristic scorer when the labels cannot support a model.

    The heuristic is used when there are fewer than ``MIN_TRAIN_ROWS`` rows, only one class, or fewer
    than 5 rows of either class. Shared by :func:`train` and the model card (:mod:`analytics.risk.card`)
    so both fall back the same way.

    Parameters
    ----------
    X : pandas.DataFrame
        Feature rows (the ``features`` columns are used).
    y : numpy.ndarray
        0/1 labels.
    features : list of str
    max_iter : int
        Boosting iterations.
    random_state : int

    Returns
    -------
    tuple
        ``(fitted estimator, "model" | "heuristic")``.

    Example
    -------
    >>> est, kind = fit_classifier(X, y, list(F.ACCOUNT_FEATURES), 30, 0)  # doctest: +SKIP
    >>> kind
    'model'
    """
    y = np.asarray(y).astype(int)
    if len(y) < MIN_TRAIN_ROWS or len(np.unique(y)) < 2 or min(np.bincount(y, minlength=2)) < 5:
        return HeuristicRiskScorer(features=features).fit(X, y), "heuristic"
    return DelinquencyClassifier(features=features, max_iter=max_iter, random_state=random_state).fit(X, y), "model"


def train(conn_or_engine, as_of: dt.date, late_days: int = DEFAULT_LATE_DAYS, max_iter: int = 150,
          random_state: int = 0, max_training_rows: int | None = MAX_TRAINING_ROWS) -> RiskModel:
    """Train the account, invoice and days-to-pay models on the ledger's history before ``as_of``.

    Each model sees at most ``max_training_rows`` candidate points, chosen before any feature is
    computed: a seeded sample of whole customers for the account snapshots (:func:`training_sample`),
    up to ``k`` evenly spread invoices of every customer for the invoice models (:func:`invoice_sample`).

    Parameters
    ----------
    conn_or_engine : sqlalchemy.Engine or Connection
    as_of : datetime.date
        Only data dated before this date is used (features and labels).
    late_days : int
        T in "paid more than T days late or not at all" (default 30).
    max_iter : int
        Boosting iterations (fewer = faster; tests use ~30).
    random_state : int
        Seed of the estimators and of the customer sample (same seed, same ledger: same model).
    max_training_rows : int or None
        Bound on the candidate rows per model (account snapshots; invoices issued in the training
        window). None trains on every point (slow and memory-hungry on millions of invoices).

    Returns
    -------
    RiskModel
        ``n_train`` also reports the candidate points and sampled customers per model.

    Example
    -------
    >>> model = train(engine, dt.date(2024, 6, 30))                     # doctest: +SKIP
    >>> model.method
    {'account': 'model', 'invoice': 'model', 'days': 'model'}
    """
    with db.connection(conn_or_engine) as conn:
        first = conn.execute(sa.select(sa.func.min(F.inv.c.invoice_date))).scalar()
        first = pd.Timestamp(first).date() if first is not None else None
        version = db.ledger_version(conn)
        # Account level
        dates = snapshot_dates(first, as_of)
        acc_sample = acc_candidates = None
        if dates:
            counts = point_counts(conn, F.snapshot_points(dates))
            acc_candidates = int(counts.sum())
            acc_sample = training_sample(counts, max_training_rows, random_state)
        acc = F.snapshot_features(conn, dates, customer_ids=acc_sample) if dates else pd.DataFrame()
        if len(acc):
            acc = acc[acc["n_items"] > 0]
            acc = acc.sort_values(["as_of", "customer_id"], kind="stable")
        acc_X = acc[F.ACCOUNT_FEATURES] if len(acc) else pd.DataFrame(columns=F.ACCOUNT_FEATURES)
        acc_y = acc["label"].to_numpy() if len(acc) else np.zeros(0, dtype=int)
        account, acc_method = fit_classifier(acc_X, acc_y, list(F.ACCOUNT_FEATURES), max_iter, random_state)
        # Invoice level
        start = as_of - dt.timedelta(days=TRAIN_INVOICE_DAYS)
        counts = point_counts(conn, F.invoice_points(start, as_of))
        inv_candidates = int(counts.sum())
        inv_sample = invoice_sample(counts, max_training_rows, random_state)
        inv = invoice_training_frame(conn, start, as_of, as_of, late_days, **(inv_sample or {}))
    known = inv[inv["known"]]
    inv_X = known[F.INVOICE_FEATURES]
    invoice, inv_method = fit_classifier(inv_X, known["label"].to_numpy(), list(F.INVOICE_FEATURES), max_iter,
                                          random_state)
    paid = inv[inv["paid"].fillna(False).astype(bool)]
    days, days_method = None, "heuristic"
    if len(paid) >= MIN_TRAIN_ROWS:
        days = DaysToPayRegressor(features=list(F.INVOICE_FEATURES), max_iter=max_iter,
                                  random_state=random_state).fit(paid[F.INVOICE_FEATURES], paid["days_to_pay"])
        days_method = "model"
    return RiskModel(
        account=account, invoice=invoice, days=days, late_days=late_days, trained_as_of=as_of,
        trained_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), ledger_version=version,
        method={"account": acc_method, "invoice": inv_method, "days": days_method},
        reference={"account": reference_values(acc_X, F.ACCOUNT_FEATURES),
                   "invoice": reference_values(inv_X, F.INVOICE_FEATURES)},
        n_train={"account_rows": int(len(acc_y)), "account_positives": int(np.sum(acc_y)),
                 "invoice_rows": int(len(known)), "invoice_positives": int(known["label"].sum()),
                 "paid_invoices": int(len(paid)),
                 "account_candidates": acc_candidates, "invoice_candidates": inv_candidates,
                 "account_sampled_customers": None if acc_sample is None else len(acc_sample),
                 "invoice_sampled_customers": None if inv_sample is None else int(inv["customer_id"].nunique()),
                 "invoice_per_customer": None if inv_sample is None else inv_sample["per_customer"],
                 "max_training_rows": max_training_rows},
    )


class ModelCache:
    """Trained models kept per (database URL, ledger version, as-of date, late_days).

    A new import or workflow write bumps the ledger version, so the next request retrains. Pass an
    instance around explicitly, or use the process-wide :data:`MODEL_CACHE` (bounded, thread-safe).
    """

    def __init__(self, maxsize: int = 8):
        self.maxsize = maxsize
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self._training: dict = {}  # key -> lock held while that key's model trains

    def get(self, conn: sa.Connection, as_of: dt.date, late_days: int = DEFAULT_LATE_DAYS,
            max_iter: int = 150, max_training_rows: int | None = MAX_TRAINING_ROWS) -> RiskModel:
        key = (conn.engine.url.render_as_string(hide_password=True), db.ledger_version(conn), as_of, late_days,
               max_iter, max_training_rows)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            training = self._training.setdefault(key, threading.Lock())
        with training:  # sessions asking at once for the same key train once; the others wait for it
            with self._lock:
                if key in self._items:
                    return self._items[key]
            model = train(conn, as_of, late_days=late_days, max_iter=max_iter, max_training_rows=max_training_rows)
            with self._lock:
                self._items[key] = model
                self._training.pop(key, None)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
        return model

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


MODEL_CACHE = ModelCache()


def resolve_model(conn, as_of, model, late_days=DEFAULT_LATE_DAYS) -> RiskModel:
    """The model to score with: ``model`` itself, a saved model file's contents, or (None) the model
    trained on the ledger's history before ``as_of`` (cached per ledger version, :data:`MODEL_CACHE`).

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
    model : RiskModel, path or None
    late_days : int

    Returns
    -------
    RiskModel

    Example
    -------
    >>> m = resolve_model(conn, dt.date(2026, 10, 31), None)          # doctest: +SKIP
    """
    if model is None:
        return MODEL_CACHE.get(conn, as_of, late_days)
    if isinstance(model, RiskModel):
        return model
    from analytics.risk.persistence import load_model
    return load_model(model)


def _cents(x: float) -> int:
    return int(Decimal(repr(float(x))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


ACCOUNT_COLUMNS = ["customer_id", "customer_name", "collector_id", "currency", "probability", "expected_loss_cents",
                   "band", "reasons", "open_cents", "overdue_cents", "max_days_past_due"]


def account_balances(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER) -> pd.DataFrame:
    """Open balance per customer at ``as_of`` (net of credits), overdue part, worst days past due.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, customer_name, collector_id, currency, open_cents, overdue_cents,
        max_days_past_due``, only customers with a positive net balance.
    """
    oi = open_items(as_of, flt)
    c = F.cust
    pos = oi.c.open_cents > 0
    stmt = (
        sa.select(
            oi.c.customer_id, c.c.name.label("customer_name"), c.c.collector_id, c.c.currency,
            sa.func.sum(oi.c.open_cents).label("open_cents"),
            sa.func.sum(sa.case((sa.and_(pos, oi.c.days_past_due > 0), oi.c.open_cents), else_=0)).label(
                "overdue_cents"),
            sa.func.max(sa.case((pos, oi.c.days_past_due))).label("max_days_past_due"),
        )
        .select_from(oi.join(c, c.c.id == oi.c.customer_id))
        .group_by(oi.c.customer_id, c.c.name, c.c.collector_id, c.c.currency)
        .having(sa.func.sum(oi.c.open_cents) > 0)
    )
    f = pd.DataFrame(conn.execute(stmt).mappings().all(),
                     columns=["customer_id", "customer_name", "collector_id", "currency", "open_cents",
                              "overdue_cents", "max_days_past_due"])
    for col in ("open_cents", "overdue_cents"):
        f[col] = pd.to_numeric(f[col]).astype("int64")
    f["max_days_past_due"] = pd.to_numeric(f["max_days_past_due"]).fillna(0).astype("int64")
    f["customer_id"] = f["customer_id"].astype(str)
    return f


def score_accounts(conn_or_engine, as_of: dt.date, flt: LedgerFilter = NO_FILTER, model=None,
                   explain_top: int = 3) -> pd.DataFrame:
    """Delinquency risk of every account with an open balance at ``as_of``.

    ``probability`` = P(the account has a balance more than 60 days past due at some day in the next
    90 days); ``expected_loss_cents`` = probability × net open balance (cents, rounded half up);
    ``band`` from :data:`~analytics.risk.models.BANDS`; ``reasons`` = the top drivers in words.
    Features use only ledger data dated before ``as_of``.

    Parameters
    ----------
    conn_or_engine : sqlalchemy.Engine or Connection
    as_of : datetime.date
    flt : LedgerFilter, optional
    model : RiskModel, path or None
        None trains on the ledger's own history before ``as_of`` (cached by ledger version).
    explain_top : int
        How many drivers to name per account.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, customer_name, collector_id, currency, probability, expected_loss_cents, band,
        reasons, open_cents, overdue_cents, max_days_past_due``, sorted by expected loss (largest first).

    Example
    -------
    >>> score_accounts(engine, dt.date(2024, 6, 30)).head(3)          # doctest: +SKIP
    """
    with db.connection(conn_or_engine) as conn:
        bal = account_balances(conn, as_of, flt)
        if bal.empty:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in ACCOUNT_COLUMNS})
        m = resolve_model(conn, as_of, model)
        hist = F.history_frame(conn, F.customer_points(as_of, flt, bal["customer_id"].tolist()))
    frame = bal.merge(hist.drop(columns=["as_of", "point_id", "open_cents"]), on="customer_id", how="left")
    X = hist.set_index("customer_id").loc[frame["customer_id"], F.ACCOUNT_FEATURES].reset_index(drop=True)
    proba = np.round(m.account_proba(X), 4)  # EL is computed from the shown probability, so they reconcile
    frame["probability"] = proba
    frame["expected_loss_cents"] = [_cents(p * o) for p, o in zip(proba, frame["open_cents"])]
    frame["band"] = [band(p) for p in proba]
    # The sentences quote the figures the table shows beside them (worst days past due over every
    # open item, overdue and open balance in the account's currency), not the model's inputs.
    facts = frame[["max_days_past_due", "overdue_cents", "open_cents", "currency"]]
    frame["reasons"] = explain.reasons(m.account, X, m.reference["account"], list(F.ACCOUNT_FEATURES),
                                       top=explain_top, facts=facts)
    frame = frame.sort_values(["expected_loss_cents", "probability", "customer_id"],
                              ascending=[False, False, True], kind="stable").reset_index(drop=True)
    return frame[ACCOUNT_COLUMNS + [c for c in F.ACCOUNT_NUMERIC if c not in ACCOUNT_COLUMNS]]


INVOICE_COLUMNS = ["invoice_id", "customer_id", "invoice_date", "due_date", "open_cents", "days_past_due",
                   "probability_late", "days_to_pay_low", "days_to_pay", "days_to_pay_high",
                   "pay_date_low", "pay_date", "pay_date_high"]


def score_invoices(conn_or_engine, as_of: dt.date, flt: LedgerFilter = NO_FILTER, model=None) -> pd.DataFrame:
    """Risk and expected payment date of every open invoice/debit memo at ``as_of``.

    ``probability_late`` = P(paid more than ``model.late_days`` days late or not at all); an item
    already more than ``late_days`` past due gets 1. ``days_to_pay*`` are days from the invoice date
    (10th/50th/90th percentile): for an item not yet due, the days-to-pay model's conformal interval
    (never earlier than its age today); for an item already past due, its age plus how much longer
    the customer's earlier items that were as late took (Kaplan-Meier,
    :func:`analytics.risk.lateness.late_payment_days`).
    ``pay_date*`` = invoice date + those days. Without enough paid history the interval falls back to
    the customer's average days late around the due date.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`INVOICE_COLUMNS`, one row per open item, riskiest first.
    """
    with db.connection(conn_or_engine) as conn:
        oi = open_items(as_of, flt)
        owed = (oi.c.open_cents > 0, receivable(oi.c.doc_type))  # open receivables: what is scored
        pts = sa.select(oi.c.invoice_id.label("point_id"), oi.c.customer_id, sa.literal(as_of, sa.Date).label(
            "as_of")).where(*owed).subquery("points")
        rows = conn.execute(sa.select(oi.c.invoice_id, oi.c.open_cents, oi.c.days_past_due).where(*owed)).all()
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in INVOICE_COLUMNS})
        m = resolve_model(conn, as_of, model)
        attrs = F.invoice_attributes(conn, pts)
        hist = F.history_frame(conn, F.customer_points(as_of, flt, attrs["customer_id"].unique().tolist()))
        frame = F.add_invoice_features(hist, attrs, on="customer_id")
        base = pd.DataFrame(rows, columns=["invoice_id", "item_open_cents", "days_past_due"]).astype(
            {"invoice_id": str}).set_index("invoice_id")
        frame = frame.join(base, how="inner")
        late_rows = (frame["days_past_due"].to_numpy(dtype=float) > 0)
        late_q = late_payment_days(conn, as_of, frame.loc[late_rows, ["customer_id", "days_past_due"]]) \
            if late_rows.any() else np.zeros((0, 3))
    X = frame[F.INVOICE_FEATURES]
    p = m.invoice_proba(X)
    dpd = frame["days_past_due"].to_numpy(dtype=float)
    p = np.where(dpd > m.late_days, 1.0, p)
    age = frame["days_open"].to_numpy(dtype=float)
    if m.days is not None:
        q = m.days.predict_interval(X)
    else:
        terms = frame["inv_terms_days"].to_numpy(dtype=float)
        late = frame["avg_days_late"].fillna(0).to_numpy(dtype=float)
        q = np.column_stack([terms + late - 10, terms + late, terms + late + 20]).clip(0)
    lo = np.maximum(q[:, 0], age)
    mid = np.maximum(q[:, 1], age)
    hi = np.maximum(q[:, 2], mid + (q[:, 2] - q[:, 1]))
    if late_rows.any():  # already past due: how much longer items as late as this one took
        rest = late_q
        lo[late_rows], mid[late_rows], hi[late_rows] = (age[late_rows] + rest[:, k] for k in range(3))
    inv_date = pd.to_datetime(frame["invoice_date"])
    out = pd.DataFrame({
        "invoice_id": frame.index.astype(str), "customer_id": frame["customer_id"].to_numpy(),
        "invoice_date": inv_date.dt.date.to_numpy(), "due_date": pd.to_datetime(frame["due_date"]).dt.date.to_numpy(),
        "open_cents": frame["item_open_cents"].astype("int64").to_numpy(),
        "days_past_due": frame["days_past_due"].astype("int64").to_numpy(),
        "probability_late": np.round(p, 4),
        "days_to_pay_low": np.round(lo).astype(int), "days_to_pay": np.round(mid).astype(int),
        "days_to_pay_high": np.round(hi).astype(int),
    })
    for name, days in (("pay_date_low", lo), ("pay_date", mid), ("pay_date_high", hi)):
        out[name] = (inv_date.to_numpy() + pd.to_timedelta(np.round(days), unit="D")).astype("datetime64[s]")
        out[name] = pd.to_datetime(out[name]).dt.date
    return out.sort_values(["probability_late", "open_cents", "invoice_id"], ascending=[False, False, True],
                           kind="stable").reset_index(drop=True)


TREND_FLAG_DAYS = 5.0


def credit_review(scores: pd.DataFrame) -> pd.DataFrame:
    """Accounts to flag for credit review, from :func:`score_accounts` output.

    Flagged when the account is deteriorating — paying at least :data:`TREND_FLAG_DAYS` days later
    in the last 90 days than in the 90 days before (``avg_late_recent − avg_late_prev``) — or when it
    is over its credit limit (``credit_util > 1``) while in the high or critical band, or has 2+
    broken promises in 90 days.

    Returns
    -------
    pandas.DataFrame
        The flagged rows with ``trend_days`` and ``flag`` (why), ordered by expected loss.

    Example
    -------
    >>> credit_review(score_accounts(engine, dt.date(2026, 10, 31)))       # doctest: +SKIP
    """
    if scores.empty:
        return scores.assign(trend_days=pd.Series(dtype=float), flag=pd.Series(dtype=str))
    s = scores.copy()
    s["trend_days"] = s["avg_late_recent"] - s["avg_late_prev"]
    worse = s["trend_days"] >= TREND_FLAG_DAYS
    over = (s["credit_util"] > 1) & s["band"].isin(["high", "critical"])
    promises = s["broken_promises_90"] >= 2
    flags = []
    for w, o, p, t, u, b in zip(worse, over, promises, s["trend_days"], s["credit_util"], s["broken_promises_90"]):
        parts = []
        if w:
            parts.append(f"paying {t:.0f} days later than the quarter before")
        if o:
            parts.append(f"{u:.0%} of credit limit used")
        if p:
            parts.append(f"{int(b)} broken promises in 90 days")
        flags.append("; ".join(parts))
    s["flag"] = flags
    return s[worse | over | promises].reset_index(drop=True)
