"""Dunning ladder, candidates and letters on a hand-made ledger.

Ledger at AS_OF = 2024-06-30 (customer K1 "Kappa & Sons <Ltd>", collector C1; USD):
  A1 invoice 2024-01-01 due 2024-01-31  1,000.00, 250.00 paid 2024-02-15 -> open   750.00, 151 dpd
  A2 invoice 2024-04-01 due 2024-05-01    300.00                        -> open   300.00,  60 dpd
  A3 invoice 2024-06-15 due 2024-07-15    200.00                        -> open   200.00, -15 dpd (not due)
  A4 invoice 2024-03-01 due 2024-03-31    400.00 paid in full 2024-04-10 -> closed, not listed
  CM credit  2024-06-20 due 2024-06-20    -50.00                        -> open   -50.00,  10 dpd
  A5 invoice 2024-02-01 due 2024-02-15     80.00 in dispute since 2024-03-01 -> open 80.00, 136 dpd, disputed
K1 open total 1,280.00; overdue not in dispute 1,050.00 (A1 + A2); worst 151 dpd, and A1's 750.00 reaches the
collection agency minimum (500.00) -> collection agency; its letter lists A1 only (the items at 121+ days).
K2 (collector C2): B1 2024-05-20 due 2024-06-19 99.99 -> 11 dpd -> reminder.
K3: everything paid -> not a candidate.
"""
import datetime as dt
import io
import zipfile

import pandas as pd
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from analytics import auth, dunning, schema, workflow
from analytics.auth import PermissionDenied, User
from analytics.dunning import DunningStep, make_ladder, next_step
from analytics.errors import UserError
from analytics.ledger import LedgerFilter

D = dt.date
AS_OF = D(2024, 6, 30)


@pytest.mark.parametrize("days, step", [
    (None, None), (-5, None), (0, None), (1, "reminder"), (15, "reminder"), (16, "second notice"),
    (30, "second notice"), (31, "call"), (60, "call"), (61, "escalation"), (90, "escalation"), (91, "hold"),
    (120, "hold"), (121, "collection agency"), (5000, "collection agency")])
def test_ladder_boundaries(days, step):
    assert next_step(days) == step


def test_custom_ladder_and_validation():
    ladder = make_ladder([("reminder", 1), ("final", 45, "last letter", True)])
    assert [next_step(d, ladder) for d in (0, 44, 45)] == [None, "reminder", "final"]
    assert ladder[1].credit_hold and ladder[1].template == "final"
    for bad in ([], [("a", 0)], [("a", 5), ("b", 5)]):
        with pytest.raises(UserError, match="dunning ladder"):
            make_ladder(bad)
    assert DunningStep("collection agency", 121).template == "collection_agency"


def build(engine):
    with engine.begin() as c:
        c.execute(schema.collectors.insert(), [{"id": "C1", "name": "Ann"}, {"id": "C2", "name": "Bob"}])
        c.execute(schema.customers.insert(), [
            {"id": "K1", "name": "Kappa & Sons <Ltd>", "collector_id": "C1"},
            {"id": "K2", "name": "Lambda", "collector_id": "C2"},
            {"id": "K3", "name": "Mu", "collector_id": "C2"}])
        inv = [("A1", "K1", "invoice", D(2024, 1, 1), D(2024, 1, 31), 100_000),
               ("A2", "K1", "invoice", D(2024, 4, 1), D(2024, 5, 1), 30_000),
               ("A3", "K1", "invoice", D(2024, 6, 15), D(2024, 7, 15), 20_000),
               ("A4", "K1", "invoice", D(2024, 3, 1), D(2024, 3, 31), 40_000),
               ("CM", "K1", "credit_memo", D(2024, 6, 20), D(2024, 6, 20), -5_000),
               ("A5", "K1", "invoice", D(2024, 2, 1), D(2024, 2, 15), 8_000),
               ("B1", "K2", "invoice", D(2024, 5, 20), D(2024, 6, 19), 9_999),
               ("M1", "K3", "invoice", D(2024, 1, 1), D(2024, 1, 31), 5_000)]
        c.execute(schema.invoices.insert(), [dict(zip(("id", "customer_id", "doc_type", "invoice_date", "due_date",
                                                       "amount_cents"), r)) for r in inv])
        c.execute(schema.receipts.insert(), [
            dict(id="R1", customer_id="K1", receipt_date=D(2024, 2, 15), amount_cents=25_000),
            dict(id="R2", customer_id="K1", receipt_date=D(2024, 4, 10), amount_cents=40_000),
            dict(id="R3", customer_id="K3", receipt_date=D(2024, 2, 1), amount_cents=5_000)])
        c.execute(schema.applications.insert(), [
            dict(receipt_id="R1", invoice_id="A1", amount_cents=25_000, applied_date=D(2024, 2, 15)),
            dict(receipt_id="R2", invoice_id="A4", amount_cents=40_000, applied_date=D(2024, 4, 10)),
            dict(receipt_id="R3", invoice_id="M1", amount_cents=5_000, applied_date=D(2024, 2, 1))])
        c.execute(schema.disputes.insert(), [dict(invoice_id="A5", customer_id="K1", opened_date=D(2024, 3, 1),
                                                  reason_code="pricing", amount_cents=8_000)])
    return engine


@pytest.fixture
def ledger(engine):
    """The ledger on each backend."""
    return build(engine)


@pytest.fixture
def duck_ledger(duckdb_engine):
    """The ledger on DuckDB only (rendering checks; the queries are covered on every backend above)."""
    return build(duckdb_engine)


def test_candidates(ledger):
    cand = dunning.dunning_candidates(ledger, AS_OF)
    assert cand["customer_id"].tolist() == ["K1", "K2"]
    k1, k2 = cand.iloc[0], cand.iloc[1]
    assert (k1.max_days_past_due, k1.step, bool(k1.credit_hold), k1.open_items, k1.overdue_items) == (
        151, "collection agency", True, 5, 2)
    assert (k1.open_cents, k1.overdue_cents, k1.disputed_cents) == (128_000, 105_000, 8_000)
    assert (k1.collector_id, k1.collector_name, k1.bucket) == ("C1", "Ann", "120+")
    assert (k2.max_days_past_due, k2.step, k2.overdue_cents, k2.bucket) == (11, "reminder", 9_999, "1-30")
    assert str(cand["open_cents"].dtype) == "int64"
    assert dunning.dunning_candidates(ledger, AS_OF, steps=["reminder"])["customer_id"].tolist() == ["K2"]
    scoped = auth.scope_filter(User("ann", "collector", "C1"), LedgerFilter(collectors=("C2",)))
    assert dunning.dunning_candidates(ledger, AS_OF, scoped)["customer_id"].tolist() == ["K1"]
    # earlier: on 2024-02-20 A1 is 20 days late (A5 disputed only from March, 5 days late)
    early = dunning.dunning_candidates(ledger, D(2024, 2, 20))
    assert early[["customer_id", "max_days_past_due", "step"]].values.tolist() == [["K1", 20, "second notice"]]
    assert dunning.dunning_candidates(ledger, D(2023, 12, 31)).empty


def test_letter_lists_exactly_the_items_at_its_level(ledger):
    # K1's step is collection agency (A1: 750.00 at 151 days >= the 500.00 minimum); the letter lists
    # A1 only: A2 (60 days) is below the level, A5 disputed, CM a credit, A3 not due, A4 paid.
    text = dunning.draft_letter(ledger, "K1", AS_OF)
    lines = text.splitlines()
    listed = [ln.split()[0] for ln in lines if ln[:2] in ("A1", "A2", "A3", "A4", "A5", "CM")]
    assert listed == ["A1"]
    row = next(ln for ln in lines if ln.startswith("A1"))
    assert row.split()[1:6] == ["2024-01-01", "2024-01-31", "151", "750.00", "USD"]
    assert next(ln for ln in lines if ln.startswith("Total of these items")).split()[-2:] == ["750.00", "USD"]
    assert "Final notice before referral to a collection agency" in text
    assert "USD 750.00 on your account is more than 120 days overdue" in text
    assert "1,050.00" not in text and "1,280.00" not in text
    assert "Kappa & Sons <Ltd>" in text  # plain text is not escaped
    assert dunning.letter_items(ledger, "K1", AS_OF)["invoice_id"].tolist() == ["A1"]
    # At the call level (31+ days) the same account's letter lists A1 and A2: 1,050.00.
    call = dunning.draft_letter(ledger, "K1", AS_OF, step="call")
    assert [ln.split()[0] for ln in call.splitlines() if ln[:2] in ("A1", "A2", "A5")] == ["A1", "A2"]
    assert "USD 1,050.00" in call and "more than 30 days overdue" in call


def test_letter_html_is_escaped_and_steps_overridable(duck_ledger):
    ledger = duck_ledger
    html = dunning.draft_letter(ledger, "K1", AS_OF, step="reminder", fmt="html",
                                sender={"name": "Zoe <script>", "department": "AR", "company": "ACME",
                                        "email": "", "phone": "", "address": ""})
    assert "Kappa &amp; Sons &lt;Ltd&gt;" in html and "<Ltd>" not in html
    assert "Zoe &lt;script&gt;" in html and "Friendly payment reminder" in html
    assert html.count("<tr><td>") == 2 and "1,050.00" in html  # A1 + A2; A5 (disputed) left out
    k2 = dunning.draft_letter(ledger, "K2", AS_OF, fmt="text")
    assert "Friendly payment reminder" in k2 and "99.99" in k2
    with pytest.raises(UserError, match="step: unknown dunning step"):
        dunning.draft_letter(ledger, "K1", AS_OF, step="threaten")
    with pytest.raises(UserError, match="no open items"):
        dunning.draft_letter(ledger, "K3", AS_OF)
    with pytest.raises(UserError, match="unknown customer"):
        dunning.draft_letter(ledger, "K9", AS_OF)
    with pytest.raises(UserError, match="nothing due a letter"):
        dunning.draft_letter(ledger, "K2", D(2024, 6, 1))
    with pytest.raises(UserError, match="no counted item 121 or more days"):
        dunning.draft_letter(ledger, "K2", AS_OF, step="collection agency")


def test_every_step_template_renders(duckdb_engine, tmp_path):
    with duckdb_engine.begin() as c:
        c.execute(schema.customers.insert(), [{"id": "K", "name": "K"}])
        c.execute(schema.invoices.insert(), [dict(id="X", customer_id="K", invoice_date=D(2024, 1, 1),
                                                  due_date=D(2024, 1, 1), amount_cents=100_000)])
    day = D(2024, 7, 20)  # 201 days past due
    for step in dunning.STEPS:
        for fmt in ("text", "html"):
            assert "1,000.00" in dunning.draft_letter(duckdb_engine, "K", day, step=step, fmt=fmt)
    custom = tmp_path / "dunning"
    custom.mkdir()
    (custom / "collection_agency.txt.j2").write_text("Hello {{ customer.name }}: {{ overdue_text }}")
    assert dunning.draft_letter(duckdb_engine, "K", day, template_dir=tmp_path) == "Hello K: USD 1,000.00"


# ------------------------------------------------------------------------------------------------
# The procedure (issue 17 item 1)
# ------------------------------------------------------------------------------------------------
def _issue_17_ledger(engine):
    """One 498.40 item 125 days past due plus seven items 1-7 days late (33,566.96 in all), and an
    account whose only overdue item is 74.99 at 130 days."""
    with engine.begin() as c:
        c.execute(schema.customers.insert(), [{"id": "Z", "name": "Zeta"}, {"id": "Y", "name": "Ypsilon"}])
        rows = [dict(id="Z0", customer_id="Z", invoice_date=D(2024, 1, 27), due_date=D(2024, 2, 26),
                     amount_cents=49_840)]
        small = [480_000, 480_000, 480_000, 480_000, 480_000, 480_000, 426_856]  # 33,068.56
        for i, cents in enumerate(small, 1):
            rows.append(dict(id=f"Z{i}", customer_id="Z", invoice_date=D(2024, 5, 1), due_date=AS_OF - dt.timedelta(days=i),
                             amount_cents=cents))
        rows.append(dict(id="Y1", customer_id="Y", invoice_date=D(2024, 1, 1), due_date=D(2024, 2, 21),
                         amount_cents=7_499))
        c.execute(schema.invoices.insert(), rows)
    return engine


def test_issue_17_letter_names_only_the_old_item(engine):
    ledger = _issue_17_ledger(engine)
    items = dunning.account_items(ledger, AS_OF)
    z = items[items["customer_id"] == "Z"]
    assert int(z["open_cents"].sum()) == 3_356_696 and int(z["days_past_due"].max()) == 125
    # Default procedure: the agency level needs 500.00 at 121+ days, so 498.40 makes it "hold" (250.00 at 91+).
    cand = dunning.dunning_candidates(ledger, AS_OF).set_index("customer_id")
    assert cand.loc["Z", "step"] == "hold" and cand.loc["Z", "letter_cents"] == 49_840
    assert cand.loc["Z", "letter_items"] == 1 and cand.loc["Z", "overdue_cents"] == 3_356_696
    text = dunning.draft_letter(ledger, "Z", AS_OF)
    assert "USD 498.40 on your account is more than 90 days overdue" in text
    assert "33,566.96" not in text and "33,068.56" not in text
    assert [ln.split()[0] for ln in text.splitlines() if ln.startswith("Z")][1:] == ["Z0"]  # after the name line
    # 74.99 at 130 days: no agency, no hold, no escalation (minimums 500 / 250 / 100) -> a call.
    assert cand.loc["Y", "step"] == "call"
    assert dunning.next_step([(130, 7_499)]) == "call" and dunning.next_step(130) == "collection agency"
    # A procedure without minimums names the same single item at the agency level.
    flat = dunning.parse_procedure(dunning.DEFAULT_PROCEDURE_FILE.read_text().replace("min_amount = 500.00",
                                                                                      "min_amount = 0"))
    agency = dunning.draft_letter(ledger, "Z", AS_OF, ladder=flat)
    assert "USD 498.40 on your account is more than 120 days overdue" in agency and "33,566.96" not in agency


def test_procedure_file_grace_interval_and_account_minimum(engine, tmp_path, monkeypatch):
    ledger = _issue_17_ledger(engine)
    custom = tmp_path / "procedure.toml"
    custom.write_text("""
[procedure]
name = "Strict"
grace_days = 5
interval_days = 14
min_account_amount = 100.00

[[levels]]
name = "reminder"
days = 1

[[levels]]
name = "final"
days = 100
min_amount = 1000.00
credit_hold = true
template = "collection_agency"
""")
    monkeypatch.setenv("AR_DUNNING_FILE", str(custom))
    proc = dunning.current_procedure()
    assert (proc.name, proc.grace_days, proc.interval_days, proc.min_account_cents) == ("Strict", 5, 14, 10_000)
    assert [(s.name, s.min_days, s.min_cents) for s in proc.levels] == [("reminder", 1, 0), ("final", 100, 100_000)]
    cand = dunning.dunning_candidates(ledger, AS_OF).set_index("customer_id")
    # Y: 74.99 is below the 100.00 account minimum -> no letter. Z: 498.40 < 1,000.00 -> reminder, listing
    # the items MORE than 5 days past due (grace): Z0, Z6, Z7.
    assert list(cand.index) == ["Z"] and cand.loc["Z", "step"] == "reminder"
    assert dunning.letter_items(ledger, "Z", AS_OF)["invoice_id"].tolist() == ["Z0", "Z7", "Z6"]
    desc = proc.describe()
    assert desc["step"].tolist() == ["reminder", "final"] and desc["min_amount_cents"].tolist() == [0, 100_000]
    for bad, why in (("[procedure]\ngrace_days = -1\n[[levels]]\nname='a'\ndays=1", "grace_days"),
                     ("[[levels]]\nname='a'\ndays=5\n[[levels]]\nname='b'\ndays=5", "strictly increase"),
                     ("[[levels]]\nname='a'\ndays=1\nmin_amount='x'", "not an amount"),
                     ("[[levels]]\nname='a'\ndays=1\ncolour=1", "unknown key"),
                     ("[[levels]\n", "not valid TOML")):
        with pytest.raises(UserError, match=why):
            dunning.parse_procedure(bad, "p.toml")
    monkeypatch.setenv("AR_DUNNING_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(UserError, match="not found"):
        dunning.current_procedure()


def test_bundled_procedure_is_the_documented_ladder():
    proc = dunning.load_procedure(dunning.DEFAULT_PROCEDURE_FILE)
    assert [(s.name, s.min_days, s.min_cents, s.credit_hold) for s in proc.levels] == [
        ("reminder", 1, 0, False), ("second notice", 16, 0, False), ("call", 31, 5_000, False),
        ("escalation", 61, 10_000, False), ("hold", 91, 25_000, True), ("collection agency", 121, 50_000, True)]
    assert (proc.grace_days, proc.interval_days, proc.min_account_cents, proc.exclude_disputed) == (0, 7, 1_000, True)


def test_zip_of_letters_and_recording(ledger, monkeypatch):
    monkeypatch.setattr(auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    before = workflow.audit_trail(ledger)
    blob = dunning.draft_letters(ledger, ["K1", "K2", "K3"], AS_OF)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        names = sorted(zf.namelist())
        assert names == ["2024-06-30_K1_collection_agency.txt", "2024-06-30_K2_reminder.txt", "index.csv"]
        index = pd.read_csv(zf.open("index.csv"), keep_default_na=False)
        assert "99.99" in zf.read("2024-06-30_K2_reminder.txt").decode()
    assert index["customer_id"].tolist() == ["K1", "K2", "K3"]
    assert "no open items" in index.loc[2, "skipped"]
    assert len(workflow.audit_trail(ledger)) == len(before)  # drafting alone records nothing
    ann = User("ann", "collector", "C1")
    with pytest.raises(PermissionDenied):
        dunning.draft_letter(ledger, "K2", AS_OF, record=True, user=ann)
    dunning.draft_letter(ledger, "K1", AS_OF, record=True, user=ann)
    with ledger.connect() as c:
        act = c.execute(sa.select(schema.activities)).one()
    assert (act.customer_id, act.type, act.outcome, act.collector_id) == ("K1", "letter",
                                                                          "dunning: collection agency", "C1")


def test_templates_per_language_fall_back_to_the_default(duck_ledger):
    assert "de" in dunning.languages()
    de = dunning.draft_letter(duck_ledger, "K2", AS_OF, language="de")
    assert "Zahlungserinnerung" in de and "USD 99.99" in de and "Summe dieser Posten" in de
    # no German template for the agency letter: the default one is used
    assert "Final notice" in dunning.draft_letter(duck_ledger, "K1", AS_OF, language="de")
    with pytest.raises(UserError, match="no letter templates for 'xx'"):
        dunning.draft_letter(duck_ledger, "K1", AS_OF, language="xx")
