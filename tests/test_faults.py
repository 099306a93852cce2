"""Faults: a process killed while it writes, an unreachable database, a damaged model file.

* ``python -m analytics generate --replace`` of a big ledger over a small one is SIGKILLed while it
  writes (its database file is growing) on DuckDB; ``python -m analytics load`` of a large CSV is
  SIGKILLed while its write-ahead log grows on SQLite. The database then opens and holds exactly
  the small ledger (per-table checksums equal).
* The dashboard against a PostgreSQL port nobody listens on says so and offers Retry, without a
  traceback or the password.
* Damaged risk model files are refused with a clear message before anything is unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analytics import db, generator
from analytics.errors import UserError
from tests.checksums import table_checksums

ROOT = Path(__file__).resolve().parent.parent


def _files(url: str) -> list[Path]:
    """The database file and its write-ahead log (DuckDB writes big inserts into the file itself)."""
    path = Path(url.split(":///", 1)[1])
    return [path, path.with_name(path.name + (".wal" if url.startswith("duckdb") else "-wal"))]


def _size(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files if f.exists())


def _kill_while_writing(cmd: list[str], files: list[Path], min_bytes: int = 512 * 1024, timeout: float = 60) -> bool:
    """Start ``cmd``; SIGKILL it once the database files grew by ``min_bytes``. True if killed mid-write."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = _size(files)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if _size(files) - start >= min_bytes:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                return True
            time.sleep(0.01)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _small_ledger(backend: str, tmp_path: Path) -> tuple[str, dict]:
    url = f"{backend}:///{tmp_path / ('ledger.' + backend)}"
    eng = db.connect(url)
    generator.generate(eng, customers=10, invoices=150, seed=3)
    sums = table_checksums(eng)
    eng.dispose()
    return url, sums


def test_generate_replace_killed_mid_write_leaves_the_old_ledger(tmp_path):
    """DuckDB: `generate --replace` drops and refills every ledger table in one transaction."""
    url, before = _small_ledger("duckdb", tmp_path)
    cmd = [sys.executable, "-m", "analytics", "generate", "--db", url, "--replace",
           "--customers", "200", "--invoices", "80000", "--seed", "5"]
    killed = _kill_while_writing(cmd, _files(url))
    assert killed, "the generator finished before it could be killed: make it bigger"
    eng = db.connect(url)  # opens (recovery of the write-ahead log) and migrates
    try:
        assert table_checksums(eng) == before
    finally:
        eng.dispose()


def test_load_killed_mid_write_leaves_the_old_ledger(tmp_path):
    """SQLite: a large CSV load (one transaction) killed while its write-ahead log grows."""
    url, before = _small_ledger("sqlite", tmp_path)
    src = tmp_path / "big.csv"
    with src.open("w") as fh:
        fh.write("Cust,Doc,Date,Amt\n")
        for i in range(50_000):
            fh.write(f"X{i % 500},XD{i},2024-{1 + i % 12:02d}-{1 + i % 28:02d},{100 + i % 9000}.25\n")
    mapping = tmp_path / "m.toml"
    mapping.write_text('default_terms_days = 30\ndefault_currency = "USD"\n[columns]\ncustomer_id = "Cust"\n'
                       'invoice_id = "Doc"\ninvoice_date = "Date"\namount = "Amt"\n')
    cmd = [sys.executable, "-m", "analytics", "load", "csv", str(src), "--mapping", str(mapping), "--db", url]
    killed = _kill_while_writing(cmd, _files(url))
    assert killed, "the load finished before it could be killed: make the file bigger"
    eng = db.connect(url)
    try:
        assert table_checksums(eng) == before
    finally:
        eng.dispose()


def test_unreachable_database_is_reported_with_retry(monkeypatch):
    from tests.apptest_helpers import app_test

    url = "postgresql+psycopg://ar:hunter2-secret@127.0.0.1:1/ledger?connect_timeout=2"
    at = app_test(monkeypatch, url, role="manager").run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "Cannot reach the database" in errors and "hunter2" not in errors and "Traceback" not in errors
    assert any(b.label == "Retry" for b in at.button)


def _model_file(path: Path, payload: bytes, **header) -> Path:
    from analytics.risk.features import ACCOUNT_FEATURES, INVOICE_FEATURES
    from analytics.risk.models import SCHEMA_VERSION

    head = {"format": "ar-risk-model", "schema_version": SCHEMA_VERSION, "account_features": list(ACCOUNT_FEATURES),
            "invoice_features": list(INVOICE_FEATURES), "late_days": 30, "trained_as_of": "2024-01-01",
            "trained_at": "2024-01-01T00:00:00", "method": "logistic",
            "sha256": hashlib.sha256(payload).hexdigest(), **header}
    path.write_bytes(json.dumps(head).encode() + b"\n" + payload)
    return path


@pytest.mark.parametrize("damage, message", [
    ("empty", "not a risk model file"),
    ("junk", "not a risk model file"),
    ("flipped", "corrupted"),
    ("truncated", "corrupted"),
    ("not_a_model", "does not contain a risk model"),
    ("other_schema", "schema version"),
    ("other_features", "feature list"),
])
def test_damaged_model_file_is_refused_clearly(tmp_path, damage, message):
    from analytics.risk import load_model

    payload = pickle.dumps({"weights": list(range(100))})
    path = tmp_path / "risk.model"
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "junk":
        path.write_bytes(os.urandom(4096))
    elif damage == "flipped":
        _model_file(path, payload)
        data = bytearray(path.read_bytes())
        data[-10] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncated":
        _model_file(path, payload)
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "not_a_model":
        _model_file(path, payload)
    elif damage == "other_schema":
        _model_file(path, payload, schema_version=-1)
    else:
        _model_file(path, payload, account_features=["x"])
    with pytest.raises(UserError, match=message):
        load_model(path)


def test_damaged_model_file_via_cli_is_one_line(tmp_path, capsys):
    from analytics.cli import main as cli_main

    path = tmp_path / "risk.model"
    path.write_bytes(b"\x00garbage")
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    assert cli_main(["risk", "score", "--db", url, "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a risk model file" in err and "Traceback" not in err
