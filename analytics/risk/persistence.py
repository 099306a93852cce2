"""Saving and loading trained risk models, with their feature lists, schema version and training date.

File layout: one JSON header line (format name, schema version, feature lists, training dates,
SHA-256 of the payload), a newline, then the pickled :class:`~analytics.risk.models.RiskModel`.
The header is checked and the checksum verified BEFORE anything is unpickled, so a truncated,
edited or foreign file is refused with a clear :class:`~analytics.errors.UserError` instead of a
traceback. Only load model files you produced yourself: pickle runs code from the file.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
from pathlib import Path

from analytics.db import ROOT
from analytics.errors import UserError
from analytics.risk.features import ACCOUNT_FEATURES, INVOICE_FEATURES
from analytics.risk.models import SCHEMA_VERSION, RiskModel

FORMAT = "ar-risk-model"
DEFAULT_MODEL_PATH = ROOT / "data" / "models" / "risk.model"


def save_model(model: RiskModel, path: str | Path = DEFAULT_MODEL_PATH) -> Path:
    """Write ``model`` to ``path`` (parent folders created); returns the path.

    Example
    -------
    >>> save_model(model, "/tmp/risk.model")                           # doctest: +SKIP
    PosixPath('/tmp/risk.model')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    header = {
        "format": FORMAT,
        "schema_version": model.schema_version,
        "account_features": list(model.account_features),
        "invoice_features": list(model.invoice_features),
        "late_days": model.late_days,
        "trained_as_of": model.trained_as_of.isoformat(),
        "trained_at": model.trained_at.isoformat(timespec="seconds"),
        "method": model.method,
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(json.dumps(header).encode() + b"\n")
        fh.write(payload)
    tmp.replace(path)
    return path


def read_header(path: str | Path) -> dict:
    """The JSON header of a model file (no unpickling). Raises UserError if it is not a model file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model file not found: {path} (train one with `python -m analytics risk train`)")
    with open(path, "rb") as fh:
        line = fh.readline(1_000_000)
    try:
        header = json.loads(line.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} is not a risk model file (unreadable header)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UserError(f"{path} is not a risk model file (format {header.get('format') if isinstance(header, dict) else None!r})")
    return header


def load_model(path: str | Path = DEFAULT_MODEL_PATH) -> RiskModel:
    """Load a model saved by :func:`save_model`, refusing anything that does not match this code.

    Refused with :class:`UserError`: a missing file, a file that is not a model file, a different
    schema version, different feature lists, a checksum mismatch (corrupted/truncated/edited file) or
    a payload that does not unpickle to a :class:`RiskModel`.

    Returns
    -------
    RiskModel
    """
    path = Path(path)
    header = read_header(path)
    if header.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{path}: model schema version {header.get('schema_version')} does not match this "
                        f"version ({SCHEMA_VERSION}); retrain with `python -m analytics risk train`")
    if header.get("account_features") != list(ACCOUNT_FEATURES) or header.get("invoice_features") != list(
            INVOICE_FEATURES):
        raise UserError(f"{path}: the model's feature list does not match this version's features; retrain it")
    with open(path, "rb") as fh:
        fh.readline(1_000_000)
        payload = fh.read()
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise UserError(f"{path}: model file is corrupted (checksum mismatch); retrain or restore it")
    try:
        model = pickle.loads(payload)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise UserError(f"{path}: model file cannot be read ({type(exc).__name__})") from None
    if not isinstance(model, RiskModel) or model.schema_version != SCHEMA_VERSION:
        raise UserError(f"{path}: file does not contain a risk model of schema version {SCHEMA_VERSION}")
    if isinstance(model.trained_as_of, str):  # pragma: no cover - defensive
        model.trained_as_of = dt.date.fromisoformat(model.trained_as_of)
    return model
