"""The planner: which installments get which contact, recorded idempotently.

:func:`plan` runs one streaming, set-based query over installments ⋈ loans ⋈
borrowers (outstanding balance, due date inside the policy's window), ordered by
borrower so that all of a borrower's installments land in the same batch, and
processes it in batches of about ``batch_size`` installments.  Per batch it issues
a fixed number of statements, whatever the batch holds:

* the compliance contexts of the batch's borrowers (one query per table), and
  when the policy has risk conditions their bot.risk facts (a few queries);
* one query for the planner's existing rows of those borrowers (on the
  ``borrower_id`` index): rows already being sent, sent, done, failed or
  cancelled are left out of the upsert, and still-pending rows of a step that is
  no longer current are *superseded*;
* one bulk upsert of contact attempts
  (``INSERT … ON CONFLICT (dedupe_key) DO UPDATE … WHERE status IN
  ('planned','deferred','blocked')``: the WHERE guards rows past planning even
  if one changes status meanwhile);
* one bulk insert of hand-off tasks (``ON CONFLICT (dedupe_key) DO NOTHING``: a
  closed hand-off stays closed);
* when there are any, one update that cancels the superseded rows, so after an
  outage only the current step can go out.

Lock order (PostgreSQL): before writing, the batch's existing rows it will touch
are locked in id order (``SELECT … ORDER BY id FOR UPDATE``), the order every
writer of several ``contact_attempts`` rows uses, so planning never deadlocks
with the dispatcher's writes.  The writes of a batch (with ``commit=True``) run
again as a whole if PostgreSQL aborts them anyway (bot.db.retry).

The pure decisions live in :mod:`bot.scheduler.decide`.  docs/scheduler.md tells
the whole algorithm.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.db.models import Borrower, ContactAttempt, Installment, Loan, PlanBorrower, Task
from bot.db.retry import lock_ids, retried
from bot.domain import AttemptSource, AttemptStatus, TaskKind, TaskStatus
from bot.events import Event, emit_many, subscribed
from bot.ledger import OPEN
from bot.policy import Policy
from bot.risk import load_facts
from bot.scheduler import incremental
from bot.scheduler.contexts import ContextLoader, default_loader
from bot.scheduler.decide import (
    CheckFn,
    CheckMemo,
    InstallmentRow,
    LocalDates,
    Placement,
    PlannedContact,
    PlannedTask,
    needs_context,
    place,
    plan_placements,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5000
REPLANNABLE = (AttemptStatus.PLANNED.value, AttemptStatus.DEFERRED.value, AttemptStatus.BLOCKED.value)
UNCHANGED = "unchanged"  # a report status: the row exists and is past planning (sending, sent, ...)


def history_since(at: datetime, policy: Policy, compliance_config: Any = None) -> datetime:
    """How far back the contexts' history must reach: what the compliance rules look
    at (their loader knows), and the policy's ``no_conversation_within_days``."""
    from bot.compliance.loader import history_since as rules_since

    days = max((step.when.no_conversation_within_days or 0 for _arm, step in policy.steps()), default=0)
    return min(rules_since(at, compliance_config), at - timedelta(days=days))


def default_check() -> CheckFn:
    """The compliance engine's ``check``, imported only when needed."""
    from bot.compliance import check

    return check


# --- report --------------------------------------------------------------------------


@dataclass(slots=True)
class PlanItem:
    borrower_id: str
    installment_id: str
    step: str
    channel: str
    status: str
    reasons: list[str]
    next_allowed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "borrower_id": self.borrower_id,
            "installment_id": self.installment_id,
            "step": self.step,
            "channel": self.channel,
            "status": self.status,
            "reasons": self.reasons,
            "next_allowed_at": self.next_allowed_at.isoformat() if self.next_allowed_at else None,
        }


@dataclass
class PlanReport:
    """What one planning pass did.  Counts are always complete; ``items`` holds at
    most ``limit`` contacts/tasks (the first ones, in borrower order)."""

    at: datetime
    policy: str
    dry_run: bool = False
    selected: int = 0  # installments the query returned
    batches: int = 0
    by_status: Counter[str] = field(default_factory=Counter)  # planned / deferred / blocked / unchanged / handoff
    by_channel: Counter[str] = field(default_factory=Counter)  # "sms:planned" ...
    by_reason: Counter[str] = field(default_factory=Counter)  # compliance reasons and planner skips
    by_step: Counter[str] = field(default_factory=Counter)
    tasks_created: int = 0
    attached: int = 0
    superseded: int = 0
    full: bool = True  # False: an incremental pass (only the borrowers whose inputs changed)
    full_reason: str | None = None  # why full: asked, no_watermark, inputs_changed, daily, clock_went_back
    limit: int = 50
    items: list[PlanItem] = field(default_factory=list)

    @property
    def contacts(self) -> int:
        return sum(n for k, n in self.by_status.items() if k != "handoff")

    def add_item(self, item: PlanItem) -> None:
        if len(self.items) < self.limit:
            self.items.append(item)

    def to_json(self, *, with_items: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "at": self.at.isoformat(),
            "policy": self.policy,
            "dry_run": self.dry_run,
            "full": self.full,
            "full_reason": self.full_reason,
            "selected_installments": self.selected,
            "batches": self.batches,
            "contacts": self.contacts,
            "by_status": dict(sorted(self.by_status.items())),
            "by_channel": dict(sorted(self.by_channel.items())),
            "by_reason": dict(sorted(self.by_reason.items())),
            "by_step": dict(sorted(self.by_step.items())),
            "handoff_tasks_created": self.tasks_created,
            "attached_installments": self.attached,
            "superseded_attempts": self.superseded,
        }
        if with_items:
            data["items_limit"] = self.limit
            data["items"] = [item.to_json() for item in self.items]
        return data


# --- selection -------------------------------------------------------------------------

SELECT_COLUMNS = (
    Installment.id,
    Installment.loan_id,
    Loan.borrower_id,
    Installment.due_date,
    Installment.amount_due_minor,
    Installment.covered_minor,
    Borrower.timezone,
    Borrower.region,
    Borrower.country,
    Borrower.phone_e164,
)


def selection(policy: Policy, at: datetime, *, borrower_id: str | None = None) -> Select[Any]:
    """The planner's query: outstanding installments whose due date can have a current
    step today in some zone, ordered by borrower (batches never split a borrower)."""
    low, high = policy.due_date_window(at.astimezone(UTC).date())
    stmt = (
        select(*SELECT_COLUMNS)
        .join(Loan, Loan.id == Installment.loan_id)
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .where(OPEN)
    )
    if borrower_id is None:
        stmt = stmt.where(Installment.due_date >= low, Installment.due_date <= high)
    else:
        stmt = stmt.where(Loan.borrower_id == borrower_id)
    return stmt.order_by(Loan.borrower_id, Installment.due_date, Installment.id)


def _batches(rows: Iterator[Sequence[Any]], size: int) -> Iterator[tuple[list[InstallmentRow], dict[str, str]]]:
    """Group rows into batches of about ``size``, cutting only between borrowers; with
    each batch the zones its borrowers were last placed in (``plan_borrowers``)."""
    batch: list[InstallmentRow] = []
    zones: dict[str, str] = {}
    last_borrower = None
    new = tuple.__new__
    width = len(InstallmentRow._fields)
    for r in rows:
        if len(batch) >= size and r[2] != last_borrower:
            yield batch, zones
            batch, zones = [], {}
        batch.append(new(InstallmentRow, r[:width]))
        if r[10] is not None:
            zones[r[2]] = r[10]
        last_borrower = r[2]
    if batch:
        yield batch, zones


def _pass_selection(session: Session, policy: Policy, at: datetime, scope: incremental.Scope) -> Select[Any]:
    """The planner's query for this pass: with the stored zone of each borrower and, for an
    incremental pass, only the borrowers whose inputs changed or whose day turned."""
    stmt = selection(policy, at).add_columns(PlanBorrower.zone).outerjoin(
        PlanBorrower, PlanBorrower.borrower_id == Loan.borrower_id)
    if not scope.full:
        stmt = stmt.where(Loan.borrower_id.in_(incremental.targets(session, at, policy=policy, scope=scope)))
    return stmt


# --- writing ----------------------------------------------------------------------------


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the planner supports SQLite and PostgreSQL, not {dialect}")


_ATTEMPT_COLUMNS = ("dedupe_key", "borrower_id", "loan_id", "installment_id", "channel", "source", "status",
                    "step", "template", "address", "next_attempt_at", "decision", "created_at", "updated_at")


@dataclass(frozen=True, slots=True)
class _Existing:
    id: int
    status: str
    installment_id: str | None


def _existing_rows(session: Session, batch: list[InstallmentRow]) -> dict[str, _Existing]:
    """The planner's rows of the batch's borrowers (one query, on the borrower index)."""
    table = ContactAttempt.__table__
    borrowers = sorted({r.borrower_id for r in batch})
    found: dict[str, _Existing] = {}
    for key, row_id, status, installment_id in session.connection().execute(  # Core: no ORM row work
        select(table.c.dedupe_key, table.c.id, table.c.status, table.c.installment_id).where(
            table.c.borrower_id.in_(borrowers), table.c.source == AttemptSource.PLANNER.value
        )
    ).all():
        found[key] = _Existing(row_id, status, installment_id)
    return found


_TASK_COLUMNS = ("borrower_id", "loan_id", "kind", "status", "source", "dedupe_key", "note", "created_at")


class _Bulk:
    """Bulk writes compiled once per dialect and run as one DBAPI ``executemany``.

    Why not a plain ``session.execute(insert, rows)``: SQLAlchemy's per-row bind
    processing was most of the write time (about 2/3 on SQLite for 10,000 rows,
    and its RETURNING path was slower still on PostgreSQL).  The statement text
    still comes from SQLAlchemy; the only values that need converting are done here
    exactly as their column types would: the decision to JSON text, and instants
    to what :class:`~bot.db.types.UTCDateTime` stores.
    """

    _cache: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}

    @classmethod
    def run(cls, session: Session, name: str, build: Callable[[Session], Any], rows: list[dict[str, Any]]) -> int:
        """Execute statement ``name`` (made by ``build``) for ``rows``; the affected row count."""
        dialect = session.get_bind().dialect
        key = (name, f"{dialect.name}+{dialect.driver}")
        cached = cls._cache.get(key)
        if cached is None:
            compiled = build(session).compile(dialect=dialect)
            order = tuple(compiled.positiontup) if dialect.positional and compiled.positiontup else None
            cached = cls._cache[key] = (compiled.string, order)
        sql, order = cached
        if order:
            pick = itemgetter(*order) if len(order) > 1 else (lambda r: (r[order[0]],))
            params: list[Any] = [pick(r) for r in rows]
        else:
            params = rows
        result = session.connection().exec_driver_sql(sql, params)
        return int(result.rowcount or 0)

    @staticmethod
    def instant(value: datetime | None, dialect: str) -> Any:
        if value is None or dialect != "sqlite":
            return value
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _attempt_upsert(session: Session) -> Any:
    table = ContactAttempt.__table__
    stmt = _insert(session, table).values({name: bindparam(name) for name in _ATTEMPT_COLUMNS})
    return stmt.on_conflict_do_update(
        index_elements=[table.c.dedupe_key],
        set_={name: stmt.excluded[name] for name in
              ("status", "step", "template", "address", "next_attempt_at", "decision", "updated_at")},
        where=table.c.status.in_([literal_column(f"'{status}'") for status in REPLANNABLE]),
    )


def _task_insert(session: Session) -> Any:
    table = Task.__table__
    stmt = _insert(session, table).values({name: bindparam(name) for name in _TASK_COLUMNS})
    return stmt.on_conflict_do_nothing(index_elements=[table.c.dedupe_key])


def _upsert_contacts(session: Session, contacts: list[PlannedContact], at: datetime) -> None:
    """Insert or refresh the attempts (never rows past planning: the WHERE guards it)."""
    if not contacts:
        return
    dialect = session.get_bind().dialect.name
    stamp = _Bulk.instant(at, dialect)
    source = AttemptSource.PLANNER.value
    encode = _DecisionEncoder()
    rows = [
        {
            "dedupe_key": c.dedupe_key,
            "borrower_id": c.borrower_id,
            "loan_id": c.loan_id,
            "installment_id": c.installment_id,
            "channel": c.channel,
            "source": source,
            "status": c.status,
            "step": c.step,
            "template": c.template,
            "address": c.address,
            "next_attempt_at": _Bulk.instant(c.next_attempt_at, dialect),
            "decision": encode(c.decision_json),
            "created_at": stamp,
            "updated_at": stamp,
        }
        for c in contacts
    ]
    _Bulk.run(session, "attempts", _attempt_upsert, rows)


class _DecisionEncoder:
    """JSON for decisions, encoding each shared ``results`` list only once.

    (:func:`bot.scheduler.decide.decision_payload` shares one list between all
    decisions with identical rule results; lists are told apart by identity, which
    is stable while the contacts that hold them are alive, i.e. during one upsert.)
    """

    def __init__(self) -> None:
        self._fragments: dict[int, str] = {}

    def __call__(self, decision: dict[str, Any]) -> str:
        results = decision.get("results")
        if not results:
            return json.dumps(decision, separators=(",", ":"))
        fragment = self._fragments.get(id(results))
        if fragment is None:
            fragment = self._fragments[id(results)] = json.dumps(results, separators=(",", ":"))
        head = json.dumps({k: v for k, v in decision.items() if k != "results"}, separators=(",", ":"))
        return f'{head[:-1]},"results":{fragment}}}' if head != "{}" else f'{{"results":{fragment}}}'


def _insert_tasks(session: Session, tasks: list[PlannedTask], at: datetime) -> int:
    """Open the hand-off tasks that do not exist yet; the number created."""
    if not tasks:
        return 0
    stamp = _Bulk.instant(at, session.get_bind().dialect.name)
    rows = [
        {
            "borrower_id": t.borrower_id,
            "loan_id": t.loan_id,
            "kind": TaskKind.HANDOFF.value,
            "status": TaskStatus.OPEN.value,
            "source": "policy",
            "dedupe_key": t.dedupe_key,
            "note": f"treatment policy step {t.step}",
            "created_at": stamp,
        }
        for t in tasks
    ]
    created = _Bulk.run(session, "tasks", _task_insert, rows)
    if created and subscribed(session, "task.opened"):  # the ones this insert created: stamped now
        opened = session.execute(
            select(Task.id, Task.borrower_id, Task.note)
            .where(Task.dedupe_key.in_([t.dedupe_key for t in tasks]), Task.created_at == at).order_by(Task.id)
        ).all()
        emit_many(session, [Event("task.opened", borrower_id, {
            "task_id": task_id, "kind": TaskKind.HANDOFF.value, "source": "policy", "note": note}, at)
            for task_id, borrower_id, note in opened])
    return created


def _zone_upsert(session: Session) -> Any:
    table = PlanBorrower.__table__
    stmt = _insert(session, table).values({"borrower_id": bindparam("borrower_id"), "zone": bindparam("zone")})
    return stmt.on_conflict_do_update(index_elements=[table.c.borrower_id], set_={"zone": stmt.excluded.zone})


def _record_zones(session: Session, zones: dict[str, str]) -> None:
    """Store the zones borrowers were placed in, where they differ from the stored ones."""
    if zones:
        _Bulk.run(session, "zones", _zone_upsert, [{"borrower_id": b, "zone": z} for b, z in sorted(zones.items())])


def _cancel(session: Session, ids: list[int], at: datetime) -> int:
    """Cancel superseded planner rows by id (still only if not past planning)."""
    if not ids:
        return 0
    table = ContactAttempt.__table__
    result = session.execute(
        update(table)
        .where(table.c.id.in_(ids), table.c.status.in_(REPLANNABLE))
        .values(status=AttemptStatus.CANCELLED.value, next_attempt_at=None, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


# --- the pass ----------------------------------------------------------------------------


def plan(
    session: Session,
    at: datetime,
    *,
    policy: Policy,
    check: CheckFn | None = None,
    commit: bool = True,
    default_timezone: str = "America/New_York",
    batch_size: int = DEFAULT_BATCH_SIZE,
    limit: int = 50,
    load_contexts: ContextLoader | None = None,
    compliance_config: Any = None,
    on_batch: Callable[[int], None] | None = None,
    incremental_pass: bool = False,
    full_every: timedelta = incremental.FULL_EVERY,
) -> PlanReport:
    """Plan every due and overdue installment at instant ``at`` (see the module docstring).

    With ``incremental_pass`` only the borrowers whose inputs changed since the last
    pass, whose local day turned or whose installments entered the window are planned
    (bot.scheduler.incremental), unless a full pass is due (no watermark yet, another
    policy or compliance configuration, the last full pass ``full_every`` ago).

    ``check`` defaults to :func:`bot.compliance.check`, ``load_contexts`` to the
    compliance engine's loader.  With ``commit=True`` the selection is read on a
    second connection and the writes are committed after every batch (an
    interrupted pass leaves the batches done so far; the next pass refreshes them,
    idempotently); the second connection does not see changes ``session`` has not
    committed yet.  With ``commit=False`` everything happens in ``session``'s
    transaction and nothing is committed: the caller commits or (``--dry-run``)
    rolls back.
    """
    if at.tzinfo is None:
        raise ValueError("plan() needs a timezone-aware instant")
    at = at.astimezone(UTC)
    check_options: dict[str, Any] = {} if compliance_config is None else {"config": compliance_config}
    if check is None:  # the engine is pure: one check per distinct input of this pass
        check = CheckMemo(default_check(), at, check_options)
    load = load_contexts or default_loader()
    report = PlanReport(at=at, policy=policy.source, dry_run=not commit, limit=max(limit, 0))
    dates = LocalDates(at, default_timezone)
    since = history_since(at, policy, compliance_config)

    scope = incremental.scope(session, at, policy=policy, full=not incremental_pass, full_every=full_every,
                              inputs=incremental.inputs_hash(policy, default_timezone, compliance_config))
    report.full, report.full_reason = scope.full, scope.reason
    stmt = _pass_selection(session, policy, at, scope).execution_options(yield_per=batch_size)
    if commit:
        session.commit()  # the watermark is read; the batches write in transactions of their own
    with contextlib.ExitStack() as stack:
        if commit:
            # Read on a connection of its own (one consistent snapshot) and commit the
            # writes after every batch: on SQLite other writers (an import, an opt-out
            # arriving by webhook) then wait for one batch, not for the whole pass.
            reader = stack.enter_context(_engine_of(session).connect())
            fetch_all_hint(reader)
            result = reader.execute(stmt)
        else:
            fetch_all_hint(session.connection())
            result = session.execute(stmt)  # one transaction: the caller rolls it back
        stack.callback(result.close)
        for batch, zones in _batches(iter(result), batch_size):
            _plan_batch(session, batch, zones, report, scope, policy=policy, at=at, check=check, load=load,
                        since=since, dates=dates, check_options=check_options, commit=commit)
            if on_batch is not None:
                on_batch(len(batch))
    _finish(session, at, scope, commit=commit)
    log.info(
        "planned at %s (%s): %d installments, %d contacts %s, %d hand-off tasks created",
        at.isoformat(timespec="seconds"), "full: " + str(report.full_reason) if report.full else "incremental",
        report.selected, report.contacts, dict(report.by_status),
        report.tasks_created,
    )
    return report


def _finish(session: Session, at: datetime, scope: incremental.Scope, *, commit: bool) -> None:
    """Clear the dirty marks the pass has planned and record its watermark."""
    if not commit:
        incremental.finish(session, at, scope)
        return

    def write() -> None:
        try:
            incremental.finish(session, at, scope)
            session.commit()
        except BaseException:
            session.rollback()
            raise

    retried(write, what="planner watermark")


def fetch_all_hint(conn: Connection) -> None:
    """Tell PostgreSQL that the whole cursor will be read.

    A server-side cursor is planned for its first 10 % of rows by default
    (``cursor_tuple_fraction``), which with stale statistics after a big import
    chose a nested loop that took 9 s instead of 40 ms on 4,000 rows.  ``SET
    LOCAL`` lasts until the end of this transaction only.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


def _plan_batch(
    session: Session,
    batch: list[InstallmentRow],
    stored_zones: dict[str, str],
    report: PlanReport,
    scope: incremental.Scope,
    *,
    policy: Policy,
    at: datetime,
    check: CheckFn,
    load: ContextLoader,
    since: datetime,
    dates: LocalDates,
    check_options: dict[str, Any],
    commit: bool = False,
) -> None:
    report.batches += 1
    report.selected += len(batch)
    facts = load_facts(session, {r.borrower_id for r in batch}, at, dates.default_timezone) \
        if policy.uses_risk else None
    placements = place(batch, policy=policy, dates=dates, risk=facts)
    wanted = needs_context(placements)
    contexts = load(session, wanted, since) if wanted else {}
    plan_placements(placements, contexts, policy=policy, at=at, check=check, check_options=check_options)
    zones = {p.row.borrower_id: p.zone for p in placements}
    moved = {borrower: zone for borrower, zone in zones.items() if stored_zones.get(borrower) != zone}

    def write_all() -> tuple[int, int, set[str]]:
        written = _write_batch(session, batch, placements, at)
        _record_zones(session, moved)
        if not scope.full:  # planned now, in the transaction of its writes: a crash plans them again
            incremental.clear(session, sorted(zones), scope.watermark)
        return written

    if commit:
        def write() -> tuple[int, int, set[str]]:
            try:
                written = write_all()
                session.commit()
            except BaseException:
                session.rollback()  # PostgreSQL aborted the writes (a deadlock): the batch is written again
                raise
            return written

        created, superseded, frozen = retried(write, what="planner batch")
    else:
        created, superseded, frozen = write_all()
    report.tasks_created += created
    report.superseded += superseded
    _count(report, placements, frozen)


def _write_batch(session: Session, batch: list[InstallmentRow], placements: list[Placement],
                 at: datetime) -> tuple[int, int, set[str]]:
    """The batch's writes: (tasks created, attempts superseded, keys left alone as past planning)."""
    existing = _existing_rows(session, batch)
    current = {p.contact.dedupe_key for p in placements if p.contact is not None}
    in_batch = {r.installment_id for r in batch}
    # Superseded: still pending rows of this batch's installments whose step is no longer current.
    superseded = [row.id for key, row in existing.items()
                  if row.status in REPLANNABLE and key not in current and row.installment_id in in_batch]
    # Rows past planning (sending, sent, ...) are left out of the upsert altogether.
    frozen = {key for key, row in existing.items() if row.status not in REPLANNABLE}
    contacts = [p.contact for p in placements if p.contact is not None and p.contact.dedupe_key not in frozen]
    tasks = [p.task for p in placements if p.task is not None]
    # The lock order: every existing row this batch rewrites, by id, before the first write.
    lock_ids(session, ContactAttempt, superseded + [existing[c.dedupe_key].id for c in contacts
                                                    if c.dedupe_key in existing])
    _upsert_contacts(session, contacts, at)
    created = _insert_tasks(session, tasks, at)
    return created, _cancel(session, superseded, at), frozen


def _count(report: PlanReport, placements: list[Placement], frozen: set[str]) -> None:
    for p in placements:
        if p.contact is not None:
            c = p.contact
            status = UNCHANGED if c.dedupe_key in frozen else c.status
            report.by_status[status] += 1
            report.by_channel[f"{c.channel}:{status}"] += 1
            report.by_step[c.step] += 1
            if status != UNCHANGED:
                for reason in c.decision_json.get("reasons", ()):
                    report.by_reason[reason] += 1
            if len(report.items) < report.limit:
                report.add_item(PlanItem(c.borrower_id, c.installment_id, c.step, c.channel, status,
                                         c.reasons if status != UNCHANGED else [],
                                         c.next_attempt_at if status == AttemptStatus.DEFERRED.value else None))
        elif p.task is not None:
            report.by_status["handoff"] += 1
            report.by_channel["human:handoff"] += 1
            report.by_step[p.task.step] += 1
            if len(report.items) < report.limit:
                report.add_item(PlanItem(p.row.borrower_id, p.row.installment_id, p.task.step, "human",
                                         "handoff", [], None))
        elif p.skip is not None:
            report.by_reason[p.skip] += 1
            if p.skip == "attached":
                report.attached += 1
