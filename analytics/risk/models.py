"""Estimators for delinquency risk and days-to-pay (scikit-learn style: fit / predict, no global state).

* :class:`DelinquencyClassifier` — a scikit-learn pipeline (imputation, one-hot region, then either a
  logistic regression baseline or HistGradientBoosting) wrapped in probability calibration
  (``CalibratedClassifierCV``: isotonic with enough data, sigmoid otherwise, on contiguous folds of
  the time-ordered training rows).
* :class:`HeuristicRiskScorer` — a documented hand-weighted score used when the ledger has too little
  history to train (fewer than :data:`MIN_TRAIN_ROWS` labelled rows or a single class).
* :class:`DaysToPayRegressor` — quantile gradient boosting (10th, 50th, 90th percentile) of the
  number of days from invoice date to payment.
* :class:`RiskModel` — the trained bundle (account model, invoice model, days-to-pay model) with its
  feature lists, schema version, training date and the reference values used for explanations.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from analytics.risk.features import ACCOUNT_FEATURES, CATEGORICAL, INVOICE_FEATURES

SCHEMA_VERSION = 1
"""Bumped whenever the feature definitions or the model bundle layout change; saved models with a
different version are refused."""

MIN_TRAIN_ROWS = 40
"""Below this many labelled rows (or with only one class) the heuristic scorer is used."""

BANDS: tuple[tuple[float, str], ...] = ((0.10, "low"), (0.30, "medium"), (0.60, "high"), (1.0, "critical"))
"""Risk band upper bounds on the account probability: low < 10 % <= medium < 30 % <= high < 60 % <= critical."""


def _single_thread(method):
    """Run ``method`` with OpenMP/BLAS limited to one thread.

    HistGradientBoosting's OpenMP threads spin-wait; on a small shared machine (2 cores, several
    processes) that made a 2-second fit take over a minute. Our data is small enough that one thread
    is both faster and predictable. The limit is scoped to the call (no global state is changed).
    """
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1):
            return method(*args, **kwargs)
    return wrapper


def band(probability: float) -> str:
    """Risk band of a probability (see :data:`BANDS`).

    Example
    -------
    >>> [band(p) for p in (0.05, 0.10, 0.45, 0.6, 1.0)]
    ['low', 'medium', 'high', 'critical', 'critical']
    """
    if probability is None or np.isnan(probability):
        return "low"
    for upper, name in BANDS[:-1]:
        if probability < upper:
            return name
    return BANDS[-1][1]


def _split_columns(features: Sequence[str]) -> tuple[list[str], list[str]]:
    cats = [f for f in features if f in CATEGORICAL]
    nums = [f for f in features if f not in CATEGORICAL]
    return nums, cats


def _preprocessor(features: Sequence[str], scale: bool) -> ColumnTransformer:
    nums, cats = _split_columns(features)
    num_steps = [SimpleImputer(strategy="median", keep_empty_features=True)]
    if scale:
        num_steps.append(StandardScaler())
    transformers = [("num", make_pipeline(*num_steps), nums)]
    if cats:
        transformers.append(("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=5,
                                                  sparse_output=False), cats))
    return ColumnTransformer(transformers)


def _frame(X, features: Sequence[str]) -> pd.DataFrame:
    X = pd.DataFrame(X).copy() if not isinstance(X, pd.DataFrame) else X.copy()
    missing = [f for f in features if f not in X.columns]
    if missing:
        raise ValueError(f"missing feature columns: {missing}")
    X = X[list(features)]
    for col in features:
        if col in CATEGORICAL:
            X[col] = X[col].astype(str)
        else:
            X[col] = pd.to_numeric(X[col], errors="coerce").astype("float64")
    return X


class DelinquencyClassifier(ClassifierMixin, BaseEstimator):
    """Calibrated probability that a row (account or invoice) turns delinquent.

    Parameters
    ----------
    features : sequence of str
        Columns of X to use (numeric, plus ``region`` one-hot encoded).
    kind : {"auto", "hgb", "logistic"}
        HistGradientBoosting, the logistic-regression baseline, or ``auto`` (default): fit both on the
        earliest 80 % of the (time-ordered) rows, keep boosting only if its Brier score on the latest
        20 % is at least 1 % lower than the logistic regression's, then refit the choice on all rows. ``selected_kind_`` and ``validation_`` record the choice.
    calibration : {"auto", "isotonic", "sigmoid", None}
        ``auto`` = isotonic with 5,000+ rows, sigmoid (Platt, keeps the ranking) below.
    max_iter, learning_rate, max_leaf_nodes : HistGradientBoosting settings.
    random_state : int

    Example
    -------
    >>> clf = DelinquencyClassifier(features=["max_dpd"], calibration=None)
    >>> X = pd.DataFrame({"max_dpd": [0, 5, 60, 90] * 10}); y = [0, 0, 1, 1] * 10
    >>> clf.fit(X, y).predict_proba(X).shape
    (40, 2)
    """

    def __init__(self, features: Sequence[str] = tuple(ACCOUNT_FEATURES), kind: str = "auto",
                 calibration: str | None = "auto", max_iter: int = 150, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 7, random_state: int = 0):
        self.features = features
        self.kind = kind
        self.calibration = calibration
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.random_state = random_state

    def _pipeline(self, kind: str) -> Pipeline:
        if kind == "logistic":
            est = LogisticRegression(max_iter=2000, C=0.5)
            return Pipeline([("prep", _preprocessor(self.features, scale=True)), ("model", est)])
        if kind == "hgb":
            est = HistGradientBoostingClassifier(
                max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=30, l2_regularization=1.0, random_state=self.random_state)
            return Pipeline([("prep", _preprocessor(self.features, scale=False)), ("model", est)])
        raise ValueError(f"unknown kind {kind!r} (use 'auto', 'hgb' or 'logistic')")

    def _fit_one(self, kind: str, X: pd.DataFrame, y: np.ndarray):
        method = self.calibration
        if method == "auto":
            method = "isotonic" if len(y) >= 5000 else "sigmoid"
        minority = int(min(np.bincount(y, minlength=2)))
        if method and minority >= 3:
            # Rows come ordered by date; unshuffled stratified folds keep time order within each class
            # and guarantee both classes in every fold.
            cv = StratifiedKFold(n_splits=3, shuffle=False)
            return CalibratedClassifierCV(self._pipeline(kind), method=method, cv=cv).fit(X, y)
        return self._pipeline(kind).fit(X, y)

    @_single_thread
    def fit(self, X, y):
        X = _frame(X, self.features)
        y = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        kind = self.kind
        self.validation_ = {}
        if kind == "auto":
            cut = int(len(y) * 0.8)
            ytr, yva = y[:cut], y[cut:]
            usable = min(np.bincount(ytr, minlength=2)) >= 5 and len(np.unique(yva)) == 2
            if usable:
                for k in ("logistic", "hgb"):
                    p = self._fit_one(k, X.iloc[:cut], ytr).predict_proba(X.iloc[cut:])
                    p = p[:, 1] if p.shape[1] == 2 else np.zeros(len(yva))
                    self.validation_[k] = float(np.mean((p - yva) ** 2))
                # Prefer the simpler, steadier model unless boosting is clearly better (1 % lower Brier).
                kind = "hgb" if self.validation_["hgb"] < 0.99 * self.validation_["logistic"] else "logistic"
            else:
                kind = "logistic"
        self.selected_kind_ = kind
        self.estimator_ = self._fit_one(kind, X, y)
        self.n_train_ = len(y)
        return self

    @_single_thread
    def predict_proba(self, X) -> np.ndarray:
        X = _frame(X, self.features)
        proba = self.estimator_.predict_proba(X)
        if proba.shape[1] == 1:  # trained on one class
            cls = getattr(self.estimator_, "classes_", [0])[0]
            col = np.ones(len(X)) * float(cls)
            return np.column_stack([1 - col, col])
        return proba

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class HeuristicRiskScorer(ClassifierMixin, BaseEstimator):
    """A transparent fallback when there is too little history to train a model.

    ``z = -3.0 + 0.035·max_dpd + 0.06·max(avg_days_late, 0) + 0.7·broken_promises_90
    + 2.0·severe_share + 0.4·open_disputes + 1.0·late_share + 0.8·[credit_util > 1]``,
    probability = ``1 / (1 + e^-z)``. Missing values count as 0. ``fit`` only records the classes.

    Example
    -------
    >>> h = HeuristicRiskScorer().fit(None, None)
    >>> round(float(h.predict_proba(pd.DataFrame({"max_dpd": [0]}))[0, 1]), 3)
    0.047
    """

    WEIGHTS = {"max_dpd": 0.035, "avg_days_late": 0.06, "broken_promises_90": 0.7, "severe_share": 2.0,
               "open_disputes": 0.4, "late_share": 1.0}
    INTERCEPT = -3.0

    def __init__(self, features: Sequence[str] = tuple(ACCOUNT_FEATURES)):
        self.features = features

    @_single_thread
    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X) -> np.ndarray:
        X = pd.DataFrame(X)
        z = np.full(len(X), self.INTERCEPT)
        for col, w in self.WEIGHTS.items():
            if col in X.columns:
                v = pd.to_numeric(X[col], errors="coerce").fillna(0.0).to_numpy(dtype=float)
                if col == "avg_days_late":
                    v = np.clip(v, 0, None)
                z = z + w * v
        if "credit_util" in X.columns:
            z = z + 0.8 * (pd.to_numeric(X["credit_util"], errors="coerce").fillna(0.0).to_numpy() > 1.0)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class DaysToPayRegressor(RegressorMixin, BaseEstimator):
    """Days from invoice date to payment: median and an interval from quantile gradient boosting.

    Parameters
    ----------
    features : sequence of str
    quantiles : tuple of float
        Low, middle and high quantile (default 10 %, 50 %, 90 %: an 80 % interval).
    max_iter : int

    calibrate : int
        Number of contiguous folds of the (time-ordered) training rows used to *conformalise* the
        interval (cross-conformal quantile regression, after Romano et al. 2019): for each fold the
        quantile models are fitted on the other folds and the conformity score
        ``max(low − y, y − high)`` is measured on the fold; the ``coverage·(1 + 1/n)`` quantile of all
        scores (coverage = high − low quantile) widens (or narrows) both ends, kept as ``margin_``.
        The final models are fitted on every row. Raw quantile boosting was over-confident (its
        10–90 % interval covered 63–68 % of IBM test invoices). 0 or 1 disables it.

    ``predict`` returns the middle quantile; ``predict_interval`` returns an (n, 3) array
    ``[low, mid, high]`` (sorted per row so the quantiles never cross).

    Example
    -------
    >>> X = pd.DataFrame({"terms_days": [30.0] * 200, "avg_days_late": np.arange(200) % 20})
    >>> reg = DaysToPayRegressor(features=["terms_days", "avg_days_late"], max_iter=20)
    >>> reg.fit(X, 30 + X["avg_days_late"] + np.arange(200) % 7).predict_interval(X).shape
    (200, 3)
    """

    def __init__(self, features: Sequence[str] = tuple(INVOICE_FEATURES), quantiles=(0.1, 0.5, 0.9),
                 max_iter: int = 120, random_state: int = 0, calibrate: int = 3):
        self.features = features
        self.quantiles = quantiles
        self.max_iter = max_iter
        self.random_state = random_state
        self.calibrate = calibrate

    def _fit_quantiles(self, X: pd.DataFrame, y: np.ndarray) -> list:
        models = []
        for q in self.quantiles:
            est = HistGradientBoostingRegressor(loss="quantile", quantile=q, max_iter=self.max_iter,
                                                learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=20,
                                                random_state=self.random_state)
            models.append(Pipeline([("prep", _preprocessor(self.features, scale=False)),
                                    ("model", est)]).fit(X, y))
        return models

    @_single_thread
    def fit(self, X, y):
        X = _frame(X, self.features)
        y = np.asarray(y, dtype=float)
        self.margin_ = 0.0
        folds = int(self.calibrate or 0)
        if folds >= 2 and len(y) >= 40 * folds:
            scores = []
            for idx in np.array_split(np.arange(len(y)), folds):
                rest = np.setdiff1d(np.arange(len(y)), idx)
                models = self._fit_quantiles(X.iloc[rest], y[rest])
                q = np.sort(np.column_stack([m.predict(X.iloc[idx]) for m in models]), axis=1)
                scores.append(np.maximum(q[:, 0] - y[idx], y[idx] - q[:, -1]))
            scores = np.concatenate(scores)
            coverage = max(self.quantiles) - min(self.quantiles)
            level = min(1.0, coverage * (1 + 1 / len(scores)))
            self.margin_ = float(np.quantile(scores, level, method="higher"))
        self.models_ = self._fit_quantiles(X, y)
        self.fallback_ = float(np.median(y)) if len(y) else 30.0
        return self

    @_single_thread
    def predict_interval(self, X) -> np.ndarray:
        X = _frame(X, self.features)
        if not len(X):
            return np.zeros((0, 3))
        preds = np.sort(np.column_stack([m.predict(X) for m in self.models_]), axis=1)
        margin = getattr(self, "margin_", 0.0)
        preds[:, 0] -= margin
        preds[:, -1] += margin
        return np.sort(np.clip(preds, 0, None), axis=1)

    def predict(self, X) -> np.ndarray:
        return self.predict_interval(X)[:, 1]


def reference_values(X: pd.DataFrame, features: Sequence[str]) -> dict:
    """Typical values of each feature in the training rows (median / most frequent), used as the
    "ordinary customer" against which explanations measure each driver."""
    ref = {}
    for f in features:
        col = X[f] if f in X.columns else pd.Series(dtype=float)
        if f in CATEGORICAL:
            mode = col.astype(str).mode()
            ref[f] = str(mode.iloc[0]) if len(mode) else "unknown"
        else:
            v = pd.to_numeric(col, errors="coerce").median()
            ref[f] = float(v) if pd.notna(v) else 0.0
    return ref


@dataclasses.dataclass
class RiskModel:
    """A trained set of risk models plus everything needed to check and explain them.

    Attributes
    ----------
    account : estimator
        P(the account has a balance 60+ days past due within the next 90 days), on ACCOUNT_FEATURES.
    invoice : estimator
        P(an invoice is paid more than ``late_days`` days late or not at all), on INVOICE_FEATURES.
    days : DaysToPayRegressor or None
        Days from invoice date to payment (interval).
    late_days : int
    trained_as_of : datetime.date
        Training used only ledger data dated before this date.
    trained_at : datetime.datetime
    method : {"model", "heuristic"} per part, e.g. ``{"account": "model", "invoice": "heuristic"}``.
    reference : dict
        ``{"account": {...}, "invoice": {...}}`` typical feature values (explanations).
    n_train : dict
        Training rows and positives per part.
    ledger_version : int or None
    schema_version : int
    account_features, invoice_features : list of str
    """

    account: object
    invoice: object
    days: object | None
    late_days: int
    trained_as_of: dt.date
    trained_at: dt.datetime
    method: dict
    reference: dict
    n_train: dict
    ledger_version: int | None = None
    schema_version: int = SCHEMA_VERSION
    account_features: list = dataclasses.field(default_factory=lambda: list(ACCOUNT_FEATURES))
    invoice_features: list = dataclasses.field(default_factory=lambda: list(INVOICE_FEATURES))

    def account_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Account probabilities for a feature frame (one row per account)."""
        if not len(X):
            return np.zeros(0)
        return self.account.predict_proba(X)[:, 1]

    def invoice_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Invoice probabilities for a feature frame (one row per invoice)."""
        if not len(X):
            return np.zeros(0)
        return self.invoice.predict_proba(X)[:, 1]
