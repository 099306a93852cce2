"""The README's "collector's day", end to end through the dashboard's widgets (Streamlit AppTest).

On a writable copy of the generated ledger: the collector ``col01`` signs in with the sign-in form,
opens the Worklist and takes the top account due a dunning step, opens it in Customer 360, logs a call and records a
promise to pay with the forms, and finds its dunning letter ready to download. Then the manager
signs in and sees the work: the Collectors leaderboard counts one more activity (and the account
as contacted) for that collector, the SLA page no longer lists the account as a past-due account
without contact, and the account's audit trail holds both writes by ``col01``.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from analytics import auth, db, schema, workflow
from tests.apptest_helpers import app_test, assert_clean, texts

COLLECTOR_USER = "col01"


def _browser(monkeypatch, url: str, username: str):
    """A new browser session on the app, signed in through the sign-in form like a person."""
    at = app_test(monkeypatch, url, role=None).run()
    assert_clean(at)
    at.text_input(key="_signin_user").set_value(username)
    at.text_input(key="_signin_password").set_value(auth.demo_password(username))
    next(b for b in at.button if b.label == "Sign in").click()
    at.run()
    assert_clean(at)
    assert at.session_state["user"].username == username
    return at


def _press(at, label: str):
    next(b for b in at.button if b.label == label).click()
    return at.run()


def _manager_view(at, today: dt.date, collector_id: str) -> dict:
    """What the manager sees today for one collector: leaderboard row, SLA contact share and breaches."""
    at.date_input(key="w_as_of").set_value(today).run()
    at.switch_page("../pages/collectors.py").run()
    assert_clean(at)
    at.segmented_control(key="coll_period").set_value("Last 30 days").run()
    assert_clean(at)
    board = next(d.value for d in at.dataframe if "collector_id" in d.value.columns)
    row = board.set_index("collector_id").loc[collector_id]
    at.switch_page("../pages/sla.py").run()
    assert_clean(at)
    contacted = next(m.value for m in at.metric if m.label == "Contacted (%)")
    try:  # a breach table with selection carries its key
        uncontacted = set(at.dataframe(key="sla_breach_past_due_contacted").value["customer_id"])
    except KeyError:  # metric met: no breach table
        uncontacted = set()
    return {"activities": int(row["activities"]), "accounts_touched": int(row["accounts_touched"]),
            "contacted": contacted, "uncontacted": uncontacted}


def test_collector_day(monkeypatch, small_ledger_copy):
    url = small_ledger_copy
    today = dt.date.today()
    engine = db.make_engine(url)
    collector_id = auth.get_user(engine, COLLECTOR_USER).collector_id
    assert collector_id

    # The manager's view before the day's work.
    before = _manager_view(_browser(monkeypatch, url, "manager"), today, collector_id)

    # 1. The collector signs in and opens the Worklist: the top account (highest expected loss).
    at = _browser(monkeypatch, url, COLLECTOR_USER)
    assert f"portfolio {collector_id}" in texts(at)
    at.switch_page("../pages/worklist.py").run()
    assert_clean(at)
    ranked = at.dataframe(key="worklist_table").value
    assert set(ranked["collector_id"]) == {collector_id}
    ranked = ranked.sort_values("rank")
    assert at.selectbox(key="wl_customer").value == ranked["customer_id"].iloc[0]
    # The top account that is due a dunning step (the very top may be current: high risk, nothing late yet).
    top = ranked.loc[ranked["next_step"].notna() & (ranked["next_step"] != ""), "customer_id"].iloc[0]
    at.selectbox(key="wl_customer").set_value(top).run()
    assert_clean(at)
    assert at.get("page_link"), "the worklist links the account to Customer 360"

    # 2. Customer 360 for that account (what the "Open ... in Customer 360" link does).
    at.query_params["customer"] = top
    at.switch_page("../pages/customer_360.py").run()
    assert_clean(at)
    assert any(top in s.value for s in at.subheader)

    # 3. Log the call.
    at.selectbox(key="act_type").set_value("call")
    at.text_input(key="act_outcome").set_value("reached AP clerk")
    at.text_area(key="act_note").set_value("Invoice approved, payment run next Friday.")
    _press(at, "Save activity")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Activity saved" in s.value for s in at.success), texts(at)

    # 4. Record the promise to pay (next Friday, 250.00).
    friday = today + dt.timedelta(days=(4 - today.weekday()) % 7 or 7)
    at.date_input(key="prom_date").set_value(friday)
    at.number_input(key="prom_amount").set_value(250.0)
    _press(at, "Save promise")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Promise saved" in s.value for s in at.success), texts(at)
    promises = next(d.value for d in at.dataframe if "promised_date" in d.value.columns)
    assert (pd.to_datetime(promises["promised_date"]).dt.date == friday).any()

    # 5. Its dunning letter is ready to download (Customer 360 and the Dunning page).
    assert "Next step:" in texts(at)
    assert any(b.label.startswith("Download the") for b in at.download_button)
    at.switch_page("../pages/dunning.py").run()
    assert_clean(at)
    at.selectbox(key="dun_preview").set_value(top).run()
    assert_clean(at)
    assert at.code and "Letter (.txt)" in [b.label for b in at.download_button]

    # 6. The manager sees the work.
    after = _manager_view(_browser(monkeypatch, url, "manager"), today, collector_id)
    assert after["activities"] == before["activities"] + 1
    assert after["accounts_touched"] >= before["accounts_touched"]
    assert top not in after["uncontacted"]
    if top in before["uncontacted"]:  # the call moved the account out of the SLA breach
        assert float(after["contacted"]) > float(before["contacted"])
    with engine.connect() as conn:
        last = conn.execute(sa.select(sa.func.max(schema.activities.c.occurred_at))
                            .where(schema.activities.c.customer_id == top)).scalar()
    assert last.date() == dt.datetime.now(dt.timezone.utc).date()
    trail = workflow.audit_trail(engine, customer_id=top)
    engine.dispose()
    mine = trail[trail["actor"] == COLLECTOR_USER]
    assert {"log_activity", "record_promise"} <= set(mine["action"])
