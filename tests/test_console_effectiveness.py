"""The console's Effectiveness page and the dashboard's promise card, over real HTTP, on SQLite
and PostgreSQL (the ``db`` fixture runs each test on both).

The console's test world (tests/test_console_support.py) plus, in ``_add_outcomes``: a payment
of B1 after the call, a promise of B1 made three days ago and kept today, a promise of B2 made
two days ago and broken today, and a contact whose imported step is ``=1+1``.  Both borrowers
live in New York (the default zone), so the default window is 2026-11-22 to 2026-11-29.
Unit costs: 7 per SMS, 11 per call minute started, 3 per email (USD).

Hand-worked figures by channel (last touch, docs/metrics.md):

| group | contacts | reached | right party | promises (promised) | kept / broken | paid | cost |
|---|---|---|---|---|---|---|---|
| sms USD | 1 (B1, delivered) | 1 | 1 (B1's reply at 12:30, after the SMS at 12:00) | 0 | 0 / 0 | 0 | 7 |
| sms CNY | 1 (B2, failed) | 0 | 0 | 0 | 0 / 0 | 0 | 7 |
| email USD | 1 (no outcome) | 0 | 0 | 0 | 0 / 0 | 0 | 3 |
| voice USD | 1 (conversation) | 1 | 1 | 1 ($100.00, at 14:02) | 0 / 0 | 1 ($100.00 at 14:30) | 22 (66 s: 2 min) |
| unattributed USD | 0 | 0 | 0 | 1 ($50.00, no reached contact before 11-25) | 1 / 0 | 0 | 0 |
| unattributed CNY | 0 | 0 | 0 | 1 (CN¥88.00) | 0 / 1 | 0 | 0 |

The imported ``=1+1`` contact (B1, 2026-11-24, no outcome) is history: one more email contact,
no cost.  Totals: contacts 5, reached 2, right party 2, promises 3, kept 1, broken 1 (kept
rate 0.5), payments 1; USD promised 15,000 recovered 10,000, CNY promised 8,800.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.db.models import ContactAttempt, Payment, Promise
from bot.effectiveness.output import money, to_csv
from test_console_support import (
    NOW,
    World,
    console_server,  # noqa: F401 - fixture
    console_settings,
    fast_hashing,  # noqa: F401 - fixture
    world,  # noqa: F401 - fixture
)

COSTS = {"cost_sms_segment_minor": 7, "cost_call_minute_minor": 11, "cost_email_minor": 3, "cost_currency": "USD"}
_CELL_RE = re.compile(r'data-metric="([a-z_]+)"[^>]*>([^<]*)<')


def _add_outcomes(world: World) -> None:
    with world.db.session() as session:
        session.add(Payment(id="PAY1", loan_id="B1-L1", paid_at=NOW - timedelta(minutes=30), amount_minor=10_000,
                            created_at=NOW, updated_at=NOW))
        session.add(Promise(borrower_id="B1", loan_id="B1-L1", promised_date=date(2026, 11, 27), amount_minor=5_000,
                            status="kept", source="sms", created_at=NOW - timedelta(days=3),
                            resolved_at=NOW - timedelta(minutes=20)))
        session.add(Promise(borrower_id="B2", loan_id="B2-L1", promised_date=date(2026, 11, 27), amount_minor=8_800,
                            status="broken", source="sms", created_at=NOW - timedelta(days=2),
                            resolved_at=NOW - timedelta(hours=1)))
        at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
        session.add(ContactAttempt(dedupe_key="import:formula", borrower_id="B1", loan_id="B1-L1",
                                   installment_id=None, channel="email", source="import", status="sent",
                                   outcome=None, step="=1+1", template=None, address=None, occurred_at=at,
                                   sent_at=None, tries=0, created_at=at, updated_at=at))
    world.server.use(console_settings(world.settings.media_dir, **COSTS), world.db, world.clock)


def _rows(html: str, attribute: str) -> dict[str, dict[str, str]]:
    """``{data-<attribute> value: {metric: cell text}}`` of the page's rows."""
    out: dict[str, dict[str, str]] = {}
    for match in re.finditer(rf'<tr [^>]*data-{attribute}="([^"]*)"[^>]*>(.*?)</tr>', html, re.S):
        out[match.group(1)] = {m: text.strip() for m, text in _CELL_RE.findall(match.group(2))}
    return out


def test_the_page_shows_the_hand_worked_figures_and_equals_the_report(world: World) -> None:
    _add_outcomes(world)
    vic = world.as_("vic")
    response = vic.get("/console/effectiveness")
    assert response.status_code == 200, response.text[:500]
    html = response.text
    assert 'aria-current="page">Effectiveness' in html
    assert 'name="from" id="f-from" value="2026-11-22"' in html and 'value="2026-11-29"' in html  # the last 7 days
    assert '<option value="channel" selected>' in html

    groups = _rows(html, "group")
    assert set(groups) == {"channel=sms currency=USD", "channel=sms currency=CNY", "channel=email currency=USD",
                           "channel=voice currency=USD", "channel=unattributed currency=USD",
                           "channel=unattributed currency=CNY"}
    voice = groups["channel=voice currency=USD"]
    assert (voice["contacts"], voice["reached"], voice["right_party_contacts"], voice["promises"], voice["payments"]
            ) == ("1", "1", "1", "1", "1")
    assert voice["promised_minor"] == voice["recovered_minor"] == "$100.00"
    assert voice["cost_minor"] == "$0.22" and voice["cost_per_recovered"] == "0.0022"
    assert groups["channel=sms currency=USD"]["right_party_contacts"] == "1"  # the reply
    assert groups["channel=sms currency=CNY"]["cost_minor"] == "$0.07"
    assert groups["channel=sms currency=CNY"]["cost_per_recovered"] == "–"  # not the cost currency
    assert groups["channel=email currency=USD"]["contacts"] == "2"  # the bot's email and the imported one
    assert groups["channel=email currency=USD"]["cost_minor"] == "$0.03"  # imported history costs nothing
    kept = groups["channel=unattributed currency=USD"]
    assert (kept["promises"], kept["kept"], kept["broken"], kept["kept_rate"]) == ("1", "1", "0", "100.0%")
    assert kept["promised_minor"] == "$50.00"
    broken = groups["channel=unattributed currency=CNY"]
    assert (broken["kept"], broken["broken"], broken["kept_rate"]) == ("0", "1", "0.0%")
    assert broken["promised_minor"] == money(8_800, "CNY")

    funnel = _rows(html, "stage")
    assert {k: v[k] for k, v in funnel.items()} == {
        "contacts": "5", "reached": "2", "right_party_contacts": "2", "promises": "3", "kept": "1", "payments": "1"}
    totals = dict(_CELL_RE.findall(html.split('id="totals"')[1].split("</dl>")[0]))
    assert (totals["promises"], totals["kept"], totals["broken"], totals["kept_rate"]) == ("3", "1", "1", "50.0%")
    assert totals["cost_minor"] == "$0.39"
    currencies = _rows(html, "currency")
    assert currencies["USD"] == {"promised_minor": "$150.00", "recovered_minor": "$100.00"}
    assert currencies["CNY"]["recovered_minor"] == money(0, "CNY")

    # The page's figures are the report's: every group's counts and amounts as the JSON has them.
    report = vic.get("/console/api/effectiveness").json()
    assert (report["from"], report["to"], report["by"]) == ("2026-11-22", "2026-11-29", ["channel"])
    assert report["totals"]["contacts"] == 5 and report["totals"]["kept_rate"] == 0.5
    for group in report["groups"]:
        m, cells = group["metrics"], groups[f"channel={group['key']['channel']} currency={group['key']['currency']}"]
        for name in ("contacts", "promises", "kept", "broken", "payments"):
            assert cells[name] == str(m[name]), (group["key"], name)
        assert cells["recovered_minor"] == money(m["recovered_minor"], m["currency"])
        assert cells["promised_minor"] == money(m["promised_minor"], m["currency"])
        assert cells["cost_minor"] == money(m["cost_minor"], m["cost_currency"])

    # The trend: every event falls in ISO week 48 (11-23 to 11-29); as the report by week has it.
    weeks = _rows(html, "week")
    assert weeks == {"2026-W48": {"contacts": "5", "reached": "2", "promises": "3", "kept": "1",
                                  "recovered": f"{money(0, 'CNY')}, $100.00"}}
    by_week = vic.get("/console/api/effectiveness", params={"by": "week"}).json()
    for name in ("contacts", "reached", "promises", "kept"):
        assert weeks["2026-W48"][name] == str(sum(g["metrics"][name] for g in by_week["groups"]))
    assert "<svg" in html and 'class="chart funnel"' in html and "style=" not in html


def test_grouping_window_and_the_csv_export(world: World) -> None:
    _add_outcomes(world)
    vic = world.as_("vic")
    arm = vic.get("/console/effectiveness", params={"by": "arm"}).text
    assert set(_rows(arm, "group")) == {"arm=none currency=USD", "arm=none currency=CNY",
                                        "arm=unattributed currency=USD", "arm=unattributed currency=CNY"}
    total = vic.get("/console/effectiveness", params={"by": "total"}).text
    assert set(_rows(total, "group")) == {"currency=USD", "currency=CNY"}
    # A window without the week's outcomes: nothing but the imported contact of 11-24.
    early = vic.get("/console/effectiveness", params={"from": "2026-11-24", "to": "2026-11-25"}).text
    assert {k: v["contacts"] for k, v in _rows(early, "group").items()} == {"channel=email currency=USD": "1"}

    csv_link = re.search(r'href="(/console/effectiveness\.csv\?[^"]+)" id="csv-export"', arm)
    assert csv_link and "by=arm" in csv_link.group(1)
    response = vic.get("/console/effectiveness.csv", params={"by": "step"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == \
        'attachment; filename="effectiveness_2026-11-22_2026-11-29_step.csv"'
    assert response.headers["cache-control"] == "no-store"
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["step", "currency", "contacts"]
    steps = {row[0] for row in rows[1:]}
    assert "'=1+1" in steps and "=1+1" not in steps  # formula-safe (bot.privacy.csv_safe)
    report = vic.get("/console/api/effectiveness", params={"by": "step"}).json()
    assert response.text == to_csv(report)


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "2026-13-01"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-11-31"}, "to"),
    ({"from": "2026-11-28", "to": "2026-11-28"}, "to"),
    ({"from": "2026-11-28", "to": "2026-11-01"}, "to"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "to"),
    ({"by": "segment' OR 1=1"}, "by"),
    ({"by": "borrower"}, "by"),
])
def test_bad_parameters_give_the_page_with_an_inline_error(world: World, params: dict[str, str], field: str) -> None:
    vic = world.as_("vic")
    response = vic.get("/console/effectiveness", params=params)
    assert response.status_code == 400
    assert re.search(rf'<p class="error" role="alert" id="effectiveness-error">{field}: ', response.text)
    assert 'id="effectiveness-filters"' in response.text and 'id="groups"' not in response.text
    for path in ("/console/effectiveness.csv", "/console/api/effectiveness"):
        assert vic.get(path, params=params).status_code == 400


def test_the_dashboard_shows_broken_promises_kept_rate_and_amounts(world: World) -> None:
    _add_outcomes(world)
    vic = world.as_("vic")
    html = vic.get("/console").text
    card = html.split('id="card-promise-window"')[1].split("</article>")[0]
    cells = _CELL_RE.findall(card)
    assert cells[:4] == [("promises", "3"), ("kept", "1"), ("broken", "1"), ("kept_rate", "50.0%")]
    assert ("promised_minor", "$150.00") in cells and ("recovered_minor", "$100.00") in cells
    assert ("promised_minor", money(8_800, "CNY")) in cells
    assert 'href="/console/effectiveness?from=2026-11-22&amp;to=2026-11-29"' in card
    api = vic.get("/console/api/dashboard").json()["promise_window"]
    assert (api["promises"], api["kept"], api["broken"], api["kept_rate"]) == (3, 1, 1, 0.5)
    assert api["currencies"] == [{"currency": "CNY", "promised_minor": 8_800, "recovered_minor": 0},
                                 {"currency": "USD", "promised_minor": 15_000, "recovered_minor": 10_000}]
    totals = vic.get("/console/api/effectiveness").json()["totals"]  # the report's totals, same days
    assert {k: api[k] for k in ("promises", "kept", "broken", "kept_rate", "payments")} == \
        {k: totals[k] for k in ("promises", "kept", "broken", "kept_rate", "payments")}
    assert api["currencies"] == [{k: c[k] for k in ("currency", "promised_minor", "recovered_minor")}
                                 for c in totals["currencies"]]


EXPERIMENT_POLICY = """\
version: 1
experiment:
  name: overdue-tone
  split: 50
  start: {start}
  end: 2026-12-31
  a:
    steps:
      - {{day: 7, channel: sms, template: reminder_overdue}}
  b:
    steps:
      - {{day: 7, channel: sms, template: reminder_due}}
"""


def test_the_experiment_block_shows_the_experiment_status(world: World, tmp_path: Path) -> None:
    with world.db.session() as session:  # B1's SMS of arm A reached, B2's of arm B failed
        for attempt in session.query(ContactAttempt).filter(ContactAttempt.channel == "sms"):
            attempt.step = ("A" if attempt.borrower_id == "B1" else "B") + ":D+7:sms"
    vic = world.as_("vic")
    assert 'id="experiment"' not in vic.get("/console/effectiveness").text  # the shipped policy has none
    policy = tmp_path / "policy.yaml"
    policy.write_text(EXPERIMENT_POLICY.format(start="2026-11-20"), encoding="utf-8")
    world.server.use(console_settings(world.settings.media_dir, policy_file=policy), world.db, world.clock)
    response = vic.get("/console/effectiveness", params={"from": "2026-11-01", "to": "2026-11-02"})
    assert response.status_code == 200, response.text[-3000:]
    html = response.text
    block = html.split('id="experiment"')[1]
    assert "Experiment overdue-tone" in block and "days 2026-11-20 to 2026-11-29 (excluded)" in block
    rates = _rows(block, "rate")
    assert set(rates) >= {"contact_rate", "promise_rate", "kept_rate", "cure_rate", "opt_out_rate", "money"}
    contact = re.search(r'data-rate="contact_rate">(.*?)</tr>', block, re.S)
    assert contact is not None
    # A: 1 of 1 reached (Wilson [0.2065, 1]); B: 0 of 1 ([0, 0.7935]); difference -1, z = -1.4142, p = 0.1573.
    cells = re.findall(r"<td[^>]*>(.*?)</td>", contact.group(1), re.S)
    assert cells[1:] == ['1 of 1 · 100.0% <small class="muted">[20.6%, 100.0%]</small>',
                         '0 of 1 · 0.0% <small class="muted">[0.0%, 79.3%]</small>', "-100.0 pt", "0.157", "0.0 pt", ""]

    later = tmp_path / "later.yaml"
    later.write_text(EXPERIMENT_POLICY.format(start="2026-12-01"), encoding="utf-8")  # a file is read once
    world.server.use(console_settings(world.settings.media_dir, policy_file=later), world.db, world.clock)
    block = vic.get("/console/effectiveness").text.split('id="experiment"')[1]
    assert "starts on 2026-12-01, after 2026-11-28" in block
    # A policy that cannot be read: the figures still show, the page says why the experiment does not.
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nexperiment: [\n", encoding="utf-8")
    world.server.use(console_settings(world.settings.media_dir, policy_file=broken), world.db, world.clock)
    response = vic.get("/console/effectiveness")
    assert response.status_code == 200 and 'id="groups"' in response.text
    assert 'id="experiment-unavailable"' in response.text and 'id="experiment"' not in response.text
