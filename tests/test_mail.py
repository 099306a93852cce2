"""Dunning letters by e-mail against a real local SMTP server (aiosmtpd on 127.0.0.1), including one
that refuses; the failure is recorded and the retry delivers it."""
import datetime as dt
import email
import socket

import pytest
import sqlalchemy as sa

from analytics import dunning_runs, mailer, schema
from analytics.auth import User
from analytics.errors import UserError
from tests.test_dunning import AS_OF, build

aiosmtpd = pytest.importorskip("aiosmtpd.controller")

MANAGER = User("mgr", "manager")


class Inbox:
    def __init__(self, refuse: bool = False):
        self.messages, self.refuse = [], refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 Message accepted"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = _port()
    ctl = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    yield inbox, mailer.SmtpSettings(host="127.0.0.1", sender="ar@example.com", port=port, tls="none", timeout=5)
    ctl.stop()


@pytest.fixture
def ledger(duckdb_engine):
    build(duckdb_engine)
    with duckdb_engine.begin() as c:
        c.execute(schema.customers.update().where(schema.customers.c.id == "K1").values(email="ap@kappa.example"))
    return duckdb_engine


def _notices(engine):
    with engine.connect() as c:
        return {r.customer_id: r for r in c.execute(sa.select(schema.dunning_notices))}


def test_letters_arrive_with_pdf_and_refusals_are_recorded_and_retried(ledger, smtp):
    inbox, settings = smtp
    inbox.refuse = True
    dunning_runs.run_dunning(ledger, MANAGER, AS_OF, smtp=settings)
    got = _notices(ledger)
    assert (got["K1"].channel, got["K1"].status, got["K1"].attempts) == ("email", "failed", 1)
    assert "550" in got["K1"].last_error and got["K1"].recipient == "ap@kappa.example"
    assert (got["K2"].channel, got["K2"].status) == ("file", "produced")  # K2 has no address: a file
    assert inbox.messages == []

    inbox.refuse = False
    assert dunning_runs.retry_unsent(ledger, MANAGER, settings) == {"sent": 1, "failed": 0}
    k1 = _notices(ledger)["K1"]
    assert (k1.status, k1.attempts, k1.last_error) == ("sent", 2, None) and k1.sent_at is not None
    [(rcpt, msg)] = inbox.messages
    assert rcpt == ["ap@kappa.example"] and msg["From"] == "ar@example.com"
    assert msg["Subject"] == "Collection agency: account K1, USD 750.00"
    parts = {p.get_content_type(): p for p in msg.walk()}
    assert "USD 750.00" in parts["text/plain"].get_payload(decode=True).decode()
    assert "Kappa &amp; Sons &lt;Ltd&gt;" in parts["text/html"].get_payload(decode=True).decode()
    pdf = parts["application/pdf"]
    assert pdf.get_filename() == "2024-06-30_K1_collection_agency.pdf"
    assert pdf.get_payload(decode=True).startswith(b"%PDF")
    # Nothing left to send; a second run the same day sends nothing.
    assert dunning_runs.retry_unsent(ledger, MANAGER, settings) == {"sent": 0, "failed": 0}
    dunning_runs.run_dunning(ledger, MANAGER, AS_OF, smtp=settings)
    assert len(inbox.messages) == 1


def test_no_server_means_files_and_settings_are_checked(ledger, monkeypatch):
    for k in ("AR_SMTP_HOST", "AR_SMTP_FROM", "AR_SMTP_PORT", "AR_SMTP_TLS"):
        monkeypatch.delenv(k, raising=False)
    dunning_runs.run_dunning(ledger, MANAGER, AS_OF)
    assert {r.channel for r in _notices(ledger).values()} == {"file"}
    with pytest.raises(UserError, match="no mail server"):
        dunning_runs.retry_unsent(ledger, MANAGER)
    with pytest.raises(UserError, match="AR_SMTP_FROM"):
        mailer.settings_from_env({"AR_SMTP_HOST": "mail"})
    with pytest.raises(UserError, match="AR_SMTP_TLS"):
        mailer.settings_from_env({"AR_SMTP_HOST": "mail", "AR_SMTP_FROM": "a@b.c", "AR_SMTP_TLS": "maybe"})
    assert mailer.settings_from_env({"AR_SMTP_HOST": "mail", "AR_SMTP_FROM": "a@b.c"}).port == 587


def test_statement_by_email(ledger, smtp):
    from analytics import statements, workflow

    inbox, settings = smtp
    to = statements.send_statement(ledger, MANAGER, "K1", dt.date(2024, 2, 1), AS_OF, settings)
    assert to == "ap@kappa.example"
    [(rcpt, msg)] = inbox.messages
    parts = {p.get_content_type(): p for p in msg.walk()}
    assert parts["application/pdf"].get_payload(decode=True).startswith(b"%PDF")
    assert "USD 1,280.00" in parts["text/plain"].get_payload(decode=True).decode()
    assert "Kappa &amp; Sons &lt;Ltd&gt;" in parts["text/html"].get_payload(decode=True).decode()
    assert "log_activity" in set(workflow.audit_trail(ledger, customer_id="K1")["action"])
    with pytest.raises(UserError, match="no e-mail address"):
        statements.send_statement(ledger, MANAGER, "K2", dt.date(2024, 2, 1), AS_OF, settings)
