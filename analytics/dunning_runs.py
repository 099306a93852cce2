"""Dunning runs: apply the procedure to the ledger, produce the letters, and keep a history.

A run at an as-of date takes every account the procedure gives a step (:func:`analytics.dunning.assess`)
and sends it a letter when

* the last letter to the account (customer and currency) is at least ``interval_days`` old, and
* at least one item the letter lists reaches a level it has not had a letter at (an item's dunning
  level is the highest level of the letters that listed it, :data:`analytics.schema.dunning_notice_items`).

So a second run the same day sends nothing twice (also enforced by a unique key on account and
as-of date), and disputed or blocked items (``dunning_blocks``) never appear. A run records
``dunning_runs``, one ``dunning_notices`` row per letter (level, amount, channel, status), the items
with their level before and after, a ``letter`` activity per customer (on the customer's collector)
and audit rows, in one transaction under the ledger write lock. With a mail server (``AR_SMTP_*``,
:mod:`analytics.mailer`) a letter to a customer with an e-mail address is sent as HTML with a PDF
attachment after the run is recorded (channel ``email``; status ``sent``, or ``failed`` with the
server's answer and retried by :func:`retry_unsent`); otherwise it is produced as a file (channel
``file``, status ``produced``, written to ``out_dir`` when given).

Example
-------
>>> plan = run_dunning(engine, user, dt.date(2026, 10, 31), dry_run=True)  # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from analytics import dunning, schema
from analytics.cli_support import date_arg
from analytics.errors import UserError
from analytics.ledger import NO_FILTER, LedgerFilter
from analytics.workflow import retry_on_conflict

PLAN_COLUMNS = ["customer_id", "currency", "step", "level", "amount_cents", "items", "invoice_ids", "action",
                "reason", "notice_id", "file"]


def _history(conn: sa.Connection, customer_ids: list[str]):
    """(last notice as-of per (customer, currency), highest level per invoice) from the history."""
    n, i = schema.dunning_notices, schema.dunning_notice_items
    ok = sa.true()  # failed letters count too: they are retried (retry_unsent), never planned twice
    last = {(r.customer_id, r.currency): r.last for r in conn.execute(
        sa.select(n.c.customer_id, n.c.currency, sa.func.max(n.c.as_of).label("last"))
        .where(ok, n.c.customer_id.in_(customer_ids)).group_by(n.c.customer_id, n.c.currency))}
    levels = {r.invoice_id: int(r.level) for r in conn.execute(
        sa.select(i.c.invoice_id, sa.func.max(i.c.level).label("level")).select_from(i.join(n, n.c.id == i.c.notice_id))
        .where(ok, n.c.customer_id.in_(customer_ids)).group_by(i.c.invoice_id))}
    return last, levels


def plan_run(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER, procedure=None) -> tuple:
    """What a run at ``as_of`` would send: (plan frame, listed items per account).

    Returns
    -------
    tuple
        A frame with :data:`PLAN_COLUMNS` (``action`` is ``send`` or ``skip`` with the ``reason``), and a
        dict (customer_id, currency) -> the listed items with ``level_before``.

    Example
    -------
    >>> plan, items = plan_run(conn, dt.date(2024, 6, 30))  # doctest: +SKIP
    """
    proc = procedure or dunning.current_procedure()
    items = dunning.account_items(conn, as_of, flt, proc)
    acc = dunning.assess(items, proc)
    acc = acc[acc["step"].notna()]
    last, levels = _history(conn, sorted(set(acc["customer_id"])))
    rows, listed_by = [], {}
    for a in acc.itertuples(index=False):
        step = next(s for s in proc.levels if s.name == a.step)
        account = items[(items["customer_id"] == a.customer_id) & (items["currency"] == a.currency)]
        listed = dunning.letter_lines(account, step).copy()
        listed["level_before"] = [levels.get(x, 0) for x in listed["invoice_id"]]
        before = last.get((a.customer_id, a.currency))
        if before is not None and (as_of - before).days < max(proc.interval_days, 1):
            action, reason = "skip", f"last letter {before.isoformat()}, interval {proc.interval_days} days"
        elif not (listed["level_before"] < a.level).any():
            action, reason = "skip", f"every listed item already had a {a.step} letter or higher"
        else:
            action, reason = "send", ""
        listed_by[(a.customer_id, a.currency)] = listed
        rows.append({"customer_id": a.customer_id, "currency": a.currency, "step": a.step, "level": int(a.level),
                     "amount_cents": int(a.letter_cents), "items": int(a.letter_items),
                     "invoice_ids": " ".join(listed["invoice_id"]), "action": action, "reason": reason,
                     "notice_id": None, "file": None})
    return pd.DataFrame(rows, columns=PLAN_COLUMNS), listed_by


def run_dunning(engine: sa.Engine, user, as_of: dt.date, *, dry_run: bool = False, flt: LedgerFilter = NO_FILTER,
                procedure=None, out_dir: str | Path | None = None, fmt: str = "html", smtp="env") -> pd.DataFrame:
    """Run the dunning of ``as_of``: choose the letters by the procedure, record them, produce them.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : analytics.auth.User
        Needs ``draft_letters`` and ``write_activity``; a collector runs their own portfolio only.
    as_of : datetime.date
    dry_run : bool, default False
        Only return the plan; nothing is written.
    flt : LedgerFilter, optional
    procedure : analytics.dunning.Procedure, optional
    out_dir : path, optional
        Where the letters are written (``<as_of>_<customer>_<currency>_<step>.html``); none when omitted.
    fmt : {"html", "text"}
    smtp : analytics.mailer.SmtpSettings, None or "env"
        Mail server; default from ``AR_SMTP_*`` (:func:`analytics.mailer.settings_from_env`). With a server,
        letters to customers with an e-mail address are sent (HTML + PDF attachment) after the run is
        recorded; a refusal is recorded as ``failed`` with the server's answer and retried by
        :func:`retry_unsent`. Without one, every letter is produced as a file.

    Returns
    -------
    pandas.DataFrame
        :data:`PLAN_COLUMNS`, one row per account with a step; ``notice_id`` set for letters recorded.

    Example
    -------
    >>> run_dunning(engine, manager, dt.date(2024, 6, 30))  # doctest: +SKIP
    """
    from analytics.auth import require, scope_filter

    require(user, "draft_letters")
    flt = scope_filter(user, flt)
    proc = procedure or dunning.current_procedure()
    if dry_run:
        with engine.connect() as conn:
            return plan_run(conn, as_of, flt, proc)[0]
    require(user, "write_activity")
    from analytics import mailer

    settings = mailer.settings_from_env() if smtp == "env" else smtp
    for attempt in range(3):
        try:
            plan = _record_run(engine, user, as_of, flt, proc, settings is not None)
            break
        except sa.exc.IntegrityError as exc:
            # Another run recorded the same account and day first (the unique key refused the second
            # letter): plan again, which now sees that run's letters and skips them.
            if "dunning_notices" not in str(exc) or attempt == 2:
                raise
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        ext = "html" if fmt == "html" else "txt"
        for idx, r in plan[plan["notice_id"].notna()].iterrows():
            text = dunning.draft_letter(engine, r.customer_id, as_of, step=r.step, fmt=fmt, ladder=proc,
                                        currency=r.currency)
            name = f"{as_of.isoformat()}_{dunning.safe_file_name(r.customer_id)}_{r.currency}_{r.step.replace(' ', '_')}.{ext}"
            (out / name).write_text(text, encoding="utf-8")
            plan.at[idx, "file"] = str(out / name)
    if settings is not None:
        ids = [int(x) for x in plan["notice_id"].dropna()]
        deliver(engine, user, settings, ids, proc)
    return plan


def deliver(engine: sa.Engine, user, settings, notice_ids, procedure=None) -> dict:
    """Send the e-mail notices among ``notice_ids`` that are ``pending`` or ``failed``; record each outcome.

    Each attempt adds 1 to ``attempts``; success sets ``sent`` and ``sent_at``, a refusal ``failed`` and
    ``last_error`` (the server's answer), each with an audit row. Nothing is dropped silently.

    Returns
    -------
    dict
        ``{"sent": n, "failed": m}``.

    Example
    -------
    >>> deliver(engine, user, mailer.settings_from_env(), [1, 2])  # doctest: +SKIP
    {'sent': 2, 'failed': 0}
    """
    from analytics import mailer

    n = schema.dunning_notices
    with engine.connect() as conn:
        rows = conn.execute(sa.select(n).where(n.c.id.in_(list(notice_ids)), n.c.channel == "email",
                                               n.c.status.in_(("pending", "failed")))).all()
    out = {"sent": 0, "failed": 0}
    for r in rows:
        try:
            text = dunning.draft_letter(engine, r.customer_id, r.as_of, step=r.step, fmt="text", ladder=procedure,
                                        currency=r.currency)
            html = dunning.draft_letter(engine, r.customer_id, r.as_of, step=r.step, fmt="html", ladder=procedure,
                                        currency=r.currency)
            subject = f"{r.step[:1].upper()}{r.step[1:]}: account {r.customer_id}, " \
                      f"{dunning.money_text(r.amount_cents, r.currency)}"
            msg = mailer.build_message(settings, r.recipient, subject, text, html, [
                (f"{r.as_of.isoformat()}_{dunning.safe_file_name(r.customer_id)}_{r.step.replace(' ', '_')}.pdf",
                 mailer.text_pdf(text), "application/pdf")])
            mailer.send(settings, msg)
            error = None
        except UserError as exc:
            error = str(exc)
        _record_delivery(engine, user, r.id, error)
        out["failed" if error else "sent"] += 1
    return out


@retry_on_conflict
def _record_delivery(engine, user, notice_id: int, error: str | None) -> None:
    from analytics.db import bump_ledger_version
    from analytics.workflow import append_audit, begin_write

    n = schema.dunning_notices
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with begin_write(engine) as conn:
        before = conn.execute(sa.select(n.c.status, n.c.attempts).where(n.c.id == notice_id)).one()
        values = {"status": "failed" if error else "sent", "attempts": int(before.attempts) + 1,
                  "last_error": error[:2000] if error else None}
        if not error:
            values["sent_at"] = now
        conn.execute(n.update().where(n.c.id == notice_id).values(**values))
        append_audit(conn, user.username, "dunning_delivery", "dunning_notices", notice_id,
                     {"status": before.status, "attempts": int(before.attempts)}, values)
        bump_ledger_version(conn)


def retry_unsent(engine: sa.Engine, user, settings=None) -> dict:
    """Send again every e-mail notice still ``pending`` or ``failed`` (default server: ``AR_SMTP_*``).

    Example
    -------
    >>> retry_unsent(engine, user)  # doctest: +SKIP
    {'sent': 1, 'failed': 0}
    """
    from analytics import mailer

    settings = settings or mailer.settings_from_env()
    if settings is None:
        raise UserError("AR_SMTP_HOST: no mail server is configured; nothing can be sent")
    n = schema.dunning_notices
    with engine.connect() as conn:
        ids = conn.execute(sa.select(n.c.id).where(n.c.channel == "email", n.c.status.in_(("pending", "failed")))
                           ).scalars().all()
    return deliver(engine, user, settings, ids)


@retry_on_conflict
def _record_run(engine, user, as_of, flt, proc, email: bool = False):
    from analytics.auth import require
    from analytics.db import bump_ledger_version
    from analytics.workflow import append_audit, begin_write

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with begin_write(engine) as conn:
        plan, listed_by = plan_run(conn, as_of, flt, proc)
        send = plan[plan["action"] == "send"]
        run_id = int(conn.execute(schema.dunning_runs.insert().values(
            as_of=as_of, started_at=now, actor=user.username, procedure=proc.label[:200],
            notices=len(send))).inserted_primary_key[0])
        c = schema.customers
        who = {r.id: r for r in conn.execute(sa.select(c.c.id, c.c.collector_id, c.c.email)
                                             .where(c.c.id.in_(list(send["customer_id"]))))}
        collectors = {k: r.collector_id for k, r in who.items()}
        for idx, r in zip(send.index, send.itertuples(index=False)):
            require(user, "draft_letters", r.customer_id, conn)
            activity = int(conn.execute(schema.activities.insert().values(
                customer_id=r.customer_id, occurred_at=now, collector_id=collectors.get(r.customer_id),
                type="letter", outcome=f"dunning: {r.step}"[:64],
                note=f"dunning run {run_id}: {r.step} letter as of {as_of.isoformat()}, "
                     f"{dunning.money_text(int(r.amount_cents), r.currency)} in {int(r.items)} item(s)")).inserted_primary_key[0])
            values = dict(run_id=run_id, customer_id=r.customer_id, currency=r.currency, as_of=as_of, level=int(r.level),
                          step=r.step, amount_cents=int(r.amount_cents), items=int(r.items), activity_id=activity)
            address = (who[r.customer_id].email or "").strip()
            if email and address:  # sent after the run is recorded (deliver)
                values.update(channel="email", recipient=address[:200], status="pending", attempts=0, sent_at=None)
            else:
                values.update(channel="file", recipient=None, status="produced", attempts=1, sent_at=now)
            notice = int(conn.execute(schema.dunning_notices.insert().values(**values)).inserted_primary_key[0])
            listed = listed_by[(r.customer_id, r.currency)]
            if listed["invoice_id"].duplicated().any():  # instalments of one invoice: one row per invoice
                listed = listed.groupby("invoice_id", as_index=False, sort=False).agg(
                    level_before=("level_before", "max"), days_past_due=("days_past_due", "max"),
                    open_cents=("open_cents", "sum"))
            conn.execute(schema.dunning_notice_items.insert(), [
                {"notice_id": notice, "invoice_id": x.invoice_id, "level_before": int(x.level_before),
                 "level": max(int(x.level_before), int(r.level)), "days_past_due": int(x.days_past_due),
                 "open_cents": int(x.open_cents)} for x in listed.itertuples(index=False)])
            append_audit(conn, user.username, "dunning_notice", "dunning_notices", notice, None,
                         {"id": notice, **values, "invoice_ids": r.invoice_ids})
            plan.at[idx, "notice_id"] = notice
        append_audit(conn, user.username, "dunning_run", "dunning_runs", run_id, None,
                     {"id": run_id, "as_of": as_of, "procedure": proc.label, "notices": len(send)})
        bump_ledger_version(conn)
    return plan


@retry_on_conflict
def block(engine: sa.Engine, user, customer_id: str, reason: str, invoice_id: str | None = None) -> int:
    """Block dunning for a customer (``invoice_id`` None) or one of its items until released.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : analytics.auth.User
        Needs ``draft_letters`` on the customer.
    customer_id : str
    reason : str
        Why (1-200 characters), e.g. "payment plan agreed".
    invoice_id : str, optional
        Must belong to the customer.

    Returns
    -------
    int
        The block id.

    Example
    -------
    >>> block(engine, manager, "K1", "payment plan agreed", invoice_id="A1")  # doctest: +SKIP
    1
    """
    from analytics.auth import require
    from analytics.db import bump_ledger_version
    from analytics.workflow import append_audit, begin_write

    reason = (reason or "").strip()
    if not 1 <= len(reason) <= 200:
        raise UserError(f"reason: give a reason of 1 to 200 characters (got {len(reason)})")
    with begin_write(engine) as conn:
        require(user, "draft_letters", customer_id, conn)
        if conn.execute(sa.select(schema.customers.c.id).where(schema.customers.c.id == customer_id)).first() is None:
            raise UserError(f"customer_id: unknown customer {customer_id!r}")
        if invoice_id is not None:
            owner = conn.execute(sa.select(schema.invoices.c.customer_id)
                                 .where(schema.invoices.c.id == invoice_id)).scalar()
            if owner != customer_id:
                raise UserError(f"invoice_id: {invoice_id!r} is not an item of customer {customer_id!r}")
        values = dict(customer_id=customer_id, invoice_id=invoice_id, reason=reason, blocked_by=user.username,
                      blocked_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        new_id = int(conn.execute(schema.dunning_blocks.insert().values(**values)).inserted_primary_key[0])
        append_audit(conn, user.username, "dunning_block", "dunning_blocks", new_id, None, {"id": new_id, **values})
        bump_ledger_version(conn)
    return new_id


@retry_on_conflict
def release_block(engine: sa.Engine, user, block_id: int) -> None:
    """Release a dunning block: its customer or item is dunned again from the next run.

    Example
    -------
    >>> release_block(engine, manager, 1)  # doctest: +SKIP
    """
    from analytics.auth import require
    from analytics.db import bump_ledger_version
    from analytics.workflow import append_audit, begin_write

    b = schema.dunning_blocks
    with begin_write(engine) as conn:
        row = conn.execute(sa.select(b).where(b.c.id == block_id)).first()
        if row is None or row.released_at is not None:
            raise UserError(f"block_id: {block_id} is not an active dunning block")
        require(user, "draft_letters", row.customer_id, conn)
        values = {"released_by": user.username, "released_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)}
        conn.execute(b.update().where(b.c.id == block_id).values(**values))
        append_audit(conn, user.username, "dunning_release", "dunning_blocks", block_id, {"released_at": None}, values)
        bump_ledger_version(conn)


def active_blocks(conn: sa.Connection | sa.Engine, customer_ids: tuple | None = None) -> pd.DataFrame:
    """Dunning blocks not yet released: ``id, customer_id, invoice_id, reason, blocked_by, blocked_at``.

    Example
    -------
    >>> active_blocks(engine)  # doctest: +SKIP
    """
    b = schema.dunning_blocks
    stmt = sa.select(b.c.id, b.c.customer_id, b.c.invoice_id, b.c.reason, b.c.blocked_by, b.c.blocked_at).where(
        b.c.released_at.is_(None)).order_by(b.c.id)
    if customer_ids is not None:
        stmt = stmt.where(b.c.customer_id.in_(list(customer_ids)))
    from analytics.db import connection

    with connection(conn) as c:
        rows = c.execute(stmt).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(stmt.selected_columns.keys()))


def history(conn: sa.Connection | sa.Engine, customer_id: str | None = None) -> pd.DataFrame:
    """The dunning history: one row per letter recorded, newest first.

    Returns
    -------
    pandas.DataFrame
        ``run_id, as_of, actor, customer_id, currency, level, step, amount_cents, items, channel,
        recipient, status, sent_at``.

    Example
    -------
    >>> history(engine, "K1")  # doctest: +SKIP
    """
    n, r = schema.dunning_notices, schema.dunning_runs
    stmt = (sa.select(n.c.run_id, n.c.as_of, r.c.actor, n.c.customer_id, n.c.currency, n.c.level, n.c.step,
                      n.c.amount_cents, n.c["items"], n.c.channel, n.c.recipient, n.c.status, n.c.sent_at)
            .select_from(n.join(r, r.c.id == n.c.run_id)).order_by(n.c.id.desc()))
    if customer_id is not None:
        stmt = stmt.where(n.c.customer_id == customer_id)
    from analytics.db import connection

    with connection(conn) as c:
        rows = c.execute(stmt).all()
    return pd.DataFrame([tuple(x) for x in rows], columns=list(stmt.selected_columns.keys()))


# ------------------------------------------------------------------------------------------------
# CLI: python -m analytics dunning run --as-of D [--dry-run] [--json] [--out DIR]
# ------------------------------------------------------------------------------------------------
def add_run_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add ``run`` (and ``procedure``) as sub-commands of an existing ``dunning`` parser."""
    sub = parser.add_subparsers(dest="dunning_command", metavar="SUBCOMMAND")
    run = sub.add_parser("run", help="run the dunning of a day by the procedure and record it")
    run.add_argument("--as-of", type=date_arg, required=True, help="date YYYY-MM-DD")
    run.add_argument("--dry-run", action="store_true", help="show what would go out; write nothing")
    run.add_argument("--collector", action="append", default=[], help="only this collector's customers")
    run.add_argument("--out", default=None, help="directory for the letters (default: none written)")
    run.add_argument("--json", action="store_true", help="print JSON")
    run.set_defaults(run=_run_cli)
    proc = sub.add_parser("procedure", help="print the dunning procedure in force")
    proc.set_defaults(run=_procedure_cli)
    retry = sub.add_parser("retry", help="send again the e-mail letters still pending or failed (AR_SMTP_*)")
    retry.set_defaults(run=_retry_cli)
    for p in (run, proc, retry):  # --db / --read-only also after the sub-command (the parent's value otherwise)
        p.add_argument("--db", default=argparse.SUPPRESS, help="SQLAlchemy URL (default: $AR_DB_URL or data/demo.db)")
        p.add_argument("--read-only", action="store_true", dest="read_only", default=argparse.SUPPRESS,
                       help="use the database read-only")


def configure_dunning_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics dunning``."""
    add_run_subcommands(parser)
    parser.set_defaults(run=lambda args: (parser.print_help(), 0)[1])


configure_cli = configure_dunning_cli


def _procedure_cli(args) -> int:
    proc = dunning.current_procedure()
    print(f"{proc.name}  ({proc.source})  grace {proc.grace_days} days, interval {proc.interval_days} days, "
          f"account minimum {dunning.money_text(proc.min_account_cents)}, disputed items "
          f"{'excluded' if proc.exclude_disputed else 'included'}")
    for i, s in enumerate(proc.levels, 1):
        print(f"{i}. {s.name:<20} from {s.min_days:>4} days  minimum {dunning.money_text(s.min_cents):>10}"
              f"{'  credit hold' if s.credit_hold else ''}")
    return 0


def _retry_cli(args) -> int:
    from analytics import db
    from analytics.auth import User

    result = retry_unsent(db.connect(args.db), User("cli", "admin"))
    print(f"sent {result['sent']}, failed {result['failed']}")
    return 0 if not result["failed"] else 1


def _run_cli(args) -> int:
    from analytics import db
    from analytics.auth import User

    as_of = args.as_of
    engine = db.connect(args.db)
    user = User("cli", "admin")
    plan = run_dunning(engine, user, as_of, dry_run=args.dry_run, flt=LedgerFilter(collectors=tuple(args.collector)),
                       out_dir=None if args.dry_run else args.out)
    sent = plan[plan["action"] == "send"]
    if args.json:
        print(json.dumps({"as_of": as_of.isoformat(), "dry_run": bool(args.dry_run), "letters": len(sent),
                          "accounts": [{**{k: (None if pd.isna(v) else v) for k, v in r.items()
                                           if k != "amount_cents"},
                                        "amount": dunning.money_text(r["amount_cents"])} for r in
                                       plan.to_dict("records")]}, indent=2, default=str))
    else:
        print(f"{'would send' if args.dry_run else 'sent'} {len(sent)} letter(s) as of {as_of.isoformat()}")
        for r in plan.itertuples():
            print(f"{r.action:<5} {r.customer_id:<16} {r.step:<18} {dunning.money_text(r.amount_cents, r.currency):>18}"
                  f"  {r.reason or r.invoice_ids}")
    return 0
