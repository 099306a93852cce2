"""The Dunning page (and the Customer 360 letter download) driven with Streamlit ``AppTest``.

Against the suite's generated ledger: the page lists what :func:`analytics.dunning.dunning_candidates`
returns for the sidebar filter, a collector sees only their own accounts, the step filter narrows
the list, the download buttons carry the letters of :func:`analytics.dunning.draft_letter` (naming
the account's open items), letters can be recorded as activities, and roles without
``draft_letters`` are refused.
"""
from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
import sqlalchemy as sa
from streamlit.runtime.media_file_manager import MediaFileManager

from analytics import db, dunning, kpis, schema
from analytics.ledger import LedgerFilter
from dashboard.formatting import label
from tests.apptest_helpers import app_test, assert_clean, open_directly, open_page, texts


@pytest.fixture(scope="module")
def facts(small_ledger_url) -> dict:
    engine = db.make_engine(small_ledger_url)
    with engine.connect() as conn:
        as_of = max(conn.execute(sa.select(sa.func.max(schema.invoices.c.invoice_date))).scalar(),
                    conn.execute(sa.select(sa.func.max(schema.receipts.c.receipt_date))).scalar())
        first = conn.execute(sa.select(sa.func.min(schema.invoices.c.invoice_date))).scalar()
        currency = kpis.main_currency(conn, LedgerFilter())
        collectors = conn.execute(sa.select(schema.collectors.c.id).order_by(schema.collectors.c.id)).scalars().all()
        owner = dict(conn.execute(sa.select(schema.customers.c.id, schema.customers.c.collector_id)).all())
        cands = dunning.dunning_candidates(conn, as_of, LedgerFilter(currencies=(currency,)))
    engine.dispose()
    return {"as_of": as_of, "first": first, "currency": currency, "collectors": list(collectors), "owner": owner,
            "cands": cands}


@pytest.fixture
def downloads(monkeypatch) -> dict:
    """file name -> bytes of every download button rendered (lazy ones: the callable, called here)."""
    seen: dict = {}
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def record(self, path_or_data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        if file_name:
            seen[file_name] = path_or_data
        return add(self, path_or_data, mimetype, coordinates, file_name, is_for_static_download)

    def record_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        if file_name:
            seen[file_name] = data_callable
        return add_deferred(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", record)
    monkeypatch.setattr(MediaFileManager, "add_deferred", record_deferred)
    return seen


def _listed(at) -> list:
    return at.dataframe[0].value["customer_id"].tolist()


def _content(value) -> bytes:
    data = value() if callable(value) else value
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def test_manager_sees_every_candidate_and_filters_by_step(monkeypatch, small_ledger_url, facts):
    at = open_page(monkeypatch, small_ledger_url, "dunning", role="manager")
    assert_clean(at)
    assert not at.warning, [w.value for w in at.warning]
    cands = facts["cands"]
    assert _listed(at) == list(cands["customer_id"])
    assert f"Accounts due a letter: {len(cands):,}" in texts(at)
    steps = set(cands["step"])
    assert len(steps) > 1, "the generated ledger has accounts at several steps"
    pick = "reminder" if "reminder" in steps else sorted(steps)[0]
    at.multiselect(key="dun_steps").set_value([pick]).run()
    assert_clean(at)
    assert not at.warning, [w.value for w in at.warning]
    narrowed = _listed(at)
    assert narrowed == list(cands.loc[cands["step"] == pick, "customer_id"])
    assert 0 < len(narrowed) < len(cands)
    assert set(at.dataframe[0].value["step"]) == {label(pick)}  # shown as a label (issue 17)
    # The bulk selection follows the new list.
    assert at.multiselect(key="dun_selected").value == narrowed
    # Bucket filter on top.
    bucket = at.dataframe[0].value["bucket"].iloc[0]
    at.multiselect(key="dun_buckets").set_value([bucket]).run()
    assert_clean(at)
    assert set(at.dataframe[0].value["bucket"]) == {bucket}


def test_collector_lists_only_own_accounts(monkeypatch, small_ledger_url, facts):
    mine = facts["collectors"][0]
    at = open_page(monkeypatch, small_ledger_url, "dunning", role="collector", collector_id=mine)
    assert_clean(at)
    listed = _listed(at)
    expected = [c for c in facts["cands"]["customer_id"] if facts["owner"][c] == mine]
    assert listed == expected and listed
    assert at.multiselect(key="dun_selected").value == listed
    offered = [opt.rsplit("(", 1)[1].split(")")[0] for opt in at.selectbox(key="dun_preview").options]
    assert offered == listed


def test_download_buttons_carry_the_letters(monkeypatch, small_ledger_url, facts, downloads):
    mine = facts["collectors"][0]
    at = open_page(monkeypatch, small_ledger_url, "dunning", role="collector", collector_id=mine)
    listed = _listed(at)
    target = listed[-1]
    at.selectbox(key="dun_preview").set_value(target).run()
    assert_clean(at)
    engine = db.make_engine(small_ledger_url)
    with engine.connect() as conn:
        items = dunning.letter_items(conn, target, facts["as_of"])
        expected = dunning.draft_letter(conn, target, facts["as_of"])
    engine.dispose()
    txt = next(name for name in downloads if name.endswith(".txt") and f"_{target}_" in name)
    letter = _content(downloads[txt]).decode("utf-8")
    assert letter == expected
    assert at.code[0].value.strip() == expected.strip()  # the preview shows the same letter
    assert all(inv in letter for inv in items["invoice_id"])
    html = next(name for name in downloads if name.endswith(".html") and f"_{target}_" in name)
    assert all(inv in _content(downloads[html]).decode("utf-8") for inv in items["invoice_id"])
    # The zip holds one letter per selected account, for these accounts only.
    at.multiselect(key="dun_selected").set_value(listed[:2]).run()
    assert_clean(at)
    with zipfile.ZipFile(io.BytesIO(_content(downloads[f"dunning_{facts['as_of'].isoformat()}.zip"]))) as zf:
        names = zf.namelist()
        index = zf.read("index.csv").decode("utf-8")
    assert len(names) == 3 and all(cid in index for cid in listed[:2])
    # HTML preview renders.
    at.segmented_control(key="dun_fmt").set_value("HTML").run()
    assert_clean(at)


def test_customer_360_offers_the_account_letter(monkeypatch, small_ledger_url, facts, downloads):
    target = facts["cands"]["customer_id"].iloc[0]
    at = open_page(monkeypatch, small_ledger_url, "customer_360", role="manager", query={"customer": target})
    assert_clean(at)
    step = facts["cands"]["step"].iloc[0]
    assert f"Next step: **{label(step)}**" in texts(at)
    name = next(n for n in downloads if n.endswith(".txt") and f"_{target}_" in n)
    engine = db.make_engine(small_ledger_url)
    with engine.connect() as conn:
        items = dunning.letter_items(conn, target, facts["as_of"])
    engine.dispose()
    letter = _content(downloads[name]).decode("utf-8")
    assert all(inv in letter for inv in items["invoice_id"])


def test_record_letter_activities(monkeypatch, small_ledger_copy, facts):
    mine = facts["collectors"][0]
    at = open_page(monkeypatch, small_ledger_copy, "dunning", role="collector", collector_id=mine,
                   username="col-letters")
    target = _listed(at)[0]
    at.multiselect(key="dun_selected").set_value([target]).run()
    at.button(key="dun_record").click().run()
    assert_clean(at)
    assert any("Recorded 1 letter" in s.value for s in at.success)
    engine = db.make_engine(small_ledger_copy)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.activities.c.customer_id, schema.activities.c.type)
                            .where(schema.activities.c.collector_id == mine,
                                   schema.activities.c.type == "letter",
                                   schema.activities.c.occurred_at >= dt.datetime.combine(dt.date.today(), dt.time())
                                   )).all()
        actors = conn.execute(sa.select(schema.audit_log.c.actor).where(
            schema.audit_log.c.action == "log_activity")).scalars().all()
    engine.dispose()
    assert [r.customer_id for r in rows] == [target]
    assert "col-letters" in actors


def test_nothing_overdue_shows_empty_state(monkeypatch, small_ledger_url, facts):
    at = open_page(monkeypatch, small_ledger_url, "dunning", role="manager")
    at.date_input(key="w_as_of").set_value(facts["first"]).run()
    assert_clean(at)
    assert any("Nothing is overdue" in i.value for i in at.info)
    assert not at.dataframe and not at.download_button


def test_finance_is_refused(monkeypatch, small_ledger_url):
    at = app_test(monkeypatch, small_ledger_url, role="finance").run()
    with pytest.raises(ValueError):  # not in the navigation
        at.switch_page("../pages/dunning.py")
    direct = open_directly(monkeypatch, small_ledger_url, "dunning", role="finance")
    assert not direct.exception
    assert any("may not open" in e.value for e in direct.error)
    assert not direct.dataframe and not direct.download_button
    # Finance sees Customer 360 read-only, without the letter section.
    at = open_page(monkeypatch, small_ledger_url, "customer_360", role="finance")
    assert_clean(at)
    assert "Next step:" not in texts(at)
    assert not [b for b in at.download_button if "letter" in b.label]


def test_dunning_run_button_records_once(monkeypatch, small_ledger_copy, facts):
    at = open_page(monkeypatch, small_ledger_copy, "dunning", role="manager", username="mgr-run")
    plan = next(d.value for d in at.dataframe if "action" in d.value.columns)
    going = int((plan["action"] == label("send")).sum())
    assert going > 0
    at.button(key="dun_run").click().run()
    assert_clean(at)
    assert any(f"Dunning run recorded {going} letter(s)" in s.value for s in at.success), texts(at)
    engine = db.make_engine(small_ledger_copy)
    with engine.connect() as conn:
        notices = conn.execute(sa.select(sa.func.count()).select_from(schema.dunning_notices)).scalar()
    engine.dispose()
    assert notices == going
    assert "**0** letters would go out now" in " ".join(m.value for m in at.markdown)  # nothing twice
    assert not [b for b in at.button if b.key == "dun_run"]


def test_statement_download_is_a_pdf_that_ties(monkeypatch, small_ledger_url, facts, downloads):
    from analytics import statements

    at = open_page(monkeypatch, small_ledger_url, "dunning", role="manager")
    target = at.selectbox(key="dun_preview").value
    name = next(n for n in downloads if n.startswith(f"statement_{target}_"))
    pdf = _content(downloads[name])
    assert pdf.startswith(b"%PDF")
    start = facts["as_of"].replace(day=1)
    st = statements.statement(db.make_engine(small_ledger_url), target, start, facts["as_of"])
    assert st.brought_forward_cents + sum(x["amount_cents"] for x in st.lines) == st.carried_forward_cents


def test_preview_in_another_language(monkeypatch, small_ledger_url, facts):
    at = open_page(monkeypatch, small_ledger_url, "dunning", role="manager")
    target = at.selectbox(key="dun_preview").value
    at.selectbox(key="dun_lang").set_value("de").run()
    assert_clean(at)
    with db.make_engine(small_ledger_url).connect() as conn:
        expected = dunning.draft_letter(conn, target, facts["as_of"], language="de")
    assert at.code[0].value.strip() == expected.strip()


def test_block_from_the_page_takes_the_account_out_of_the_run(monkeypatch, small_ledger_copy, facts):
    at = open_page(monkeypatch, small_ledger_copy, "dunning", role="manager", username="mgr-block")
    target = at.selectbox(key="dun_preview").value
    at.text_input(key="dun_block_reason").set_value("payment plan agreed")
    at.button(key="dun_block").click().run()
    assert_clean(at)
    assert any(f"Dunning blocked for {target}" in s.value for s in at.success), texts(at)
    plan = next(d.value for d in at.dataframe if "action" in d.value.columns)
    assert target not in set(plan["customer_id"])


def test_statement_e_mailed_from_the_page(monkeypatch, small_ledger_copy, facts):
    from tests.test_mail import Inbox, _port

    controller = pytest.importorskip("aiosmtpd.controller")
    inbox, port = Inbox(), _port()
    ctl = controller.Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        for k, v in {"AR_SMTP_HOST": "127.0.0.1", "AR_SMTP_PORT": str(port), "AR_SMTP_TLS": "none",
                     "AR_SMTP_FROM": "ar@example.com"}.items():
            monkeypatch.setenv(k, v)
        at = open_page(monkeypatch, small_ledger_copy, "dunning", role="manager", username="mgr-mail")
        target = at.selectbox(key="dun_preview").value
        at.button(key="dun_mail_statement").click().run()
        assert_clean(at)
        assert any("Statement e-mailed to" in s.value for s in at.success), texts(at)
    finally:
        ctl.stop()
    [(rcpt, msg)] = inbox.messages
    assert rcpt == [f"ap.{target.lower()}@example.com"]
