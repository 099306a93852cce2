"""SLA status and breach lists on the hand-computed ledger of tests/test_kpis_ops.py, as of 2024-03-31.

Evaluation period: March 2024 (month to date). All USD. Arithmetic:

DSO (window 90 days: sales dated 2024-01-02..03-31, I1 of 01-01 and L2 of 2023 are outside):
  AR = K1 950 (I1 650 + I2 300) + K2 250 + K3 850 (L1 600 + L2 250) + K4 100 = 2,150.00
  sales = I2 500 + J1 400 + L1 800 + M1 100 = 1,800.00 -> DSO = 2,150 / 1,800 x 90 = 107.5 > 45: breached.
  Per account: K1 950/500x90 = 171, K2 250/400x90 = 56.25 -> 56, K3 850/800x90 = 95.625 -> 96, K4 100/100x90 = 90.
  With a target of 100 only K1 is behind the breach.
CEI March: AR 02-29 = I1 950 + J1 400 + L1 800 + L2 300 = 2,450; sales I2 500 + M1 100 = 600; AR 03-31 2,150;
  current 03-31 = I2 300 + M1 100 = 400 -> (2,450 + 600 - 2,150) / (2,450 + 600 - 400) = 900 / 2,650 = 33.96 %.
  Per account: K1 (950 + 500 - 950) / (950 + 500 - 300) = 500/1,150 = 43.5 %, overdue 650, 60 days;
  K2 (400 - 250) / 400 = 37.5 %, overdue 250, 46 days; K3 (1,100 - 850) / 1,100 = 22.7 %, overdue 850, 91 days;
  K4 (0 + 100 - 100) / (0 + 100 - 100) = 0/0: not defined, not listed.
Disputes: 60 % in time < 90 %: misses D5 (K3, 300.00, open 81 days) and D6 (K2, 80.00, resolved in 44 days).
Contact: 2 of 3 accounts over 30 days past due contacted = 66.7 % < 100 %: K2 (250.00, 46 days past due).
Promises: 50 % kept < 80 %: broken P5 (K3, 300.00 not received, 26 days) and P2 (K1, 100.00 of 200.00, 16 days).
"""
from __future__ import annotations

import datetime as dt

import pytest

from analytics.errors import UserError
from analytics.kpis import sla
from analytics.kpis.sla import SlaTargets
from analytics.ledger import LedgerFilter
from tests.test_kpis_ops import ledger  # noqa: F401  (module-scoped hand-computed ledger, all backends)

D = dt.date
AS_OF = D(2024, 3, 31)


def _status(df):
    return dict(zip(df["metric"], df["status"]))


def test_sla_status(ledger):
    with ledger.connect() as c:
        df = sla.sla_status(c, AS_OF)
    assert df["metric"].tolist() == list(sla.METRICS)
    assert set(df["status"]) == {"breached"}
    actual = dict(zip(df["metric"], df["actual"]))
    assert actual["dso"] == pytest.approx(107.5)
    assert actual["cei"] == pytest.approx(900 / 2_650 * 100)
    assert actual["disputes_resolved_in_time"] == pytest.approx(60.0)
    assert actual["past_due_contacted"] == pytest.approx(200 / 3)
    assert actual["ptp_kept"] == pytest.approx(50.0)
    assert df["target"].tolist() == [45.0, 80.0, 90.0, 100.0, 80.0]
    assert df.attrs["period_start"] == D(2024, 3, 1) and df.attrs["currency"] == "USD"
    detail = df.set_index("metric")["detail"]
    assert "2 of 3 accounts" in detail["past_due_contacted"]
    assert detail["disputes_resolved_in_time"].startswith("3 of 4 disputes resolved in 2024-03-01..2024-03-31")
    assert detail["ptp_kept"].startswith("2 kept, 2 broken, 1 pending of 5 promises")


def test_sla_breaches_name_the_accounts(ledger):
    with ledger.connect() as c:
        br = sla.sla_breaches(c, AS_OF)
    assert set(br) == set(sla.METRICS)
    rows = {m: df[["customer_id", "amount_cents", "days"]].astype(object).values.tolist() for m, df in br.items()}
    assert rows["dso"] == [["K1", 95_000, 171], ["K3", 85_000, 96], ["K2", 25_000, 56], ["K4", 10_000, 90]]
    assert rows["cei"] == [["K3", 85_000, 91], ["K1", 65_000, 60], ["K2", 25_000, 46]]
    assert rows["disputes_resolved_in_time"] == [["K3", 30_000, 81], ["K2", 8_000, 44]]
    assert rows["past_due_contacted"] == [["K2", 25_000, 46]]
    assert rows["ptp_kept"] == [["K3", 30_000, 26], ["K1", 10_000, 16]]
    contact = br["past_due_contacted"].iloc[0]
    assert (contact["customer_name"], contact["collector_id"]) == ("Lambda", "C1")
    assert contact["detail"] == "last contact 2024-02-15 (45 days ago); needed on or after 2024-03-25"
    assert list(br["dso"].columns) == list(sla.BREACH_COLUMNS)


def test_custom_targets_met_and_breached(ledger):
    targets = SlaTargets(dso_max=100, cei_min=30, dispute_share_min=60, contact_share_min=None, ptp_kept_min=50)
    with ledger.connect() as c:
        st = _status(sla.sla_status(c, AS_OF, targets=targets))
        br = sla.sla_breaches(c, AS_OF, targets=targets)
    assert st == {"dso": "breached", "cei": "met", "disputes_resolved_in_time": "met",
                  "past_due_contacted": "not defined", "ptp_kept": "met"}
    assert br["dso"]["customer_id"].tolist() == ["K1"]  # 171 days; K3 95.6 and K4 90 are within 100
    assert all(br[m].empty for m in ("cei", "disputes_resolved_in_time", "past_due_contacted", "ptp_kept"))


def test_nothing_to_measure_is_not_defined(ledger):
    with ledger.connect() as c:  # K4: one current invoice, no disputes, promises or past-due balance
        st = _status(sla.sla_status(c, AS_OF, LedgerFilter(customers=("K4",))))
        br = sla.sla_breaches(c, AS_OF, LedgerFilter(customers=("K4",)))
    assert st == {"dso": "breached", "cei": "not defined", "disputes_resolved_in_time": "not defined",
                  "past_due_contacted": "not defined", "ptp_kept": "not defined"}
    assert br["dso"]["days"].tolist() == [90]


def test_collector_scope(ledger):
    with ledger.connect() as c:
        br = sla.sla_breaches(c, AS_OF, LedgerFilter(collectors=("C2",)))
    assert {m: df["customer_id"].tolist() for m, df in br.items()} == {
        "dso": ["K3"], "cei": ["K3"], "disputes_resolved_in_time": ["K3"], "past_due_contacted": [],
        "ptp_kept": ["K3"]}


def test_trailing_period(ledger):
    with ledger.connect() as c:  # last 10 days (03-22..03-31): D6 resolved late, D5 open too long -> 0 %
        df = sla.sla_status(c, AS_OF, targets=SlaTargets(period_days=10)).set_index("metric")
    assert df.attrs["period_start"] == D(2024, 3, 22)
    assert df.loc["disputes_resolved_in_time", "actual"] == 0.0
    # promises made 03-22..03-31: only P4, still pending -> no kept rate
    assert df.loc["ptp_kept", "status"] == "not defined"


def test_targets_from_dict_and_toml(tmp_path):
    assert SlaTargets() == sla.DEFAULT_TARGETS
    t = SlaTargets.from_dict({"dso_max": 50, "ptp_kept_min": False, "grace_days": 5})
    assert (t.dso_max, t.ptp_kept_min, t.grace_days, t.cei_min) == (50.0, None, 5, 80.0)
    assert SlaTargets.from_dict(t.to_dict()) == t
    path = tmp_path / "sla.toml"
    path.write_text("[sla]\ndso_max = 60\ncei_min = 75.5\nperiod_days = 30\ncontact_share_min = false\n")
    t = SlaTargets.from_toml(path)
    assert (t.dso_max, t.cei_min, t.period_days, t.contact_share_min) == (60.0, 75.5, 30, None)
    path.write_text("dispute_days = 45\n")
    assert SlaTargets.from_toml(path).dispute_days == 45


@pytest.mark.parametrize("values, message", [
    ({"dso_maximum": 3}, "unknown SLA setting"),
    ({"cei_min": "high"}, "must be a number"),
    ({"cei_min": 120}, "out of range"),
    ({"grace_days": 1.5}, "whole number of days"),
    ({"contact_within_days": 0}, "at least 1 day"),
])
def test_bad_targets(values, message):
    with pytest.raises(UserError, match=message):
        SlaTargets.from_dict(values)


def test_bad_toml(tmp_path):
    path = tmp_path / "sla.toml"
    path.write_text("dso_max = = 3\n")
    with pytest.raises(UserError, match="not valid TOML"):
        SlaTargets.from_toml(path)
    with pytest.raises(UserError, match="not found"):
        SlaTargets.from_toml(tmp_path / "missing.toml")
