"""Text-reply understanding on the labelled corpora (bot.nlu; docs/nlu.md, "Measured accuracy").

    python bench/nlu_bench.py [--set tuning|heldout|both] [--errors]

Reads ``tests/data/nlu_tuning.csv`` (the rules were tuned on it) and
``tests/data/nlu_heldout.csv`` (written first and never tuned on) and prints, per
set: accuracy per expected intent, overall intent accuracy, date accuracy (the
replies labelled ``promise_to_pay`` with a date: right intent *and* right date),
and the **wrong-action rate**: the share of replies whose predicted reading
would act (opt_out, paid, wrong_number, dispute, promise_to_pay with a date)
and is wrong (another intent, or another date).  ``--errors`` lists the misses
(rule names only, and the corpus text, which is invented).

Every row is classified as an SMS on :data:`TODAY` (a Wednesday).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.domain import Intent  # noqa: E402
from bot.nlu import classify  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
SETS = {"tuning": DATA / "nlu_tuning.csv", "heldout": DATA / "nlu_heldout.csv"}
TODAY = date(2026, 11, 25)
#: Intents whose reading changes records on its own (opt-out, paid claim, flag, task, promise).
ACTING = frozenset({Intent.OPT_OUT, Intent.PAID, Intent.WRONG_NUMBER, Intent.DISPUTE})


@dataclass(frozen=True, slots=True)
class Row:
    locale: str
    intent: Intent
    promise_date: date | None
    text: str


@dataclass(frozen=True, slots=True)
class Result:
    row: Row
    intent: Intent
    promise_date: date | None
    matched: str

    @property
    def right(self) -> bool:
        return self.intent is self.row.intent and self.promise_date == self.row.promise_date

    @property
    def acts(self) -> bool:
        return self.intent in ACTING or (self.intent is Intent.PROMISE_TO_PAY and self.promise_date is not None)


@dataclass(frozen=True, slots=True)
class Figures:
    rows: int
    intent_accuracy: float
    date_rows: int
    date_accuracy: float
    wrong_actions: int
    wrong_action_rate: float
    per_intent: dict[str, tuple[int, int]]  # expected intent -> (right, total)
    misses: list[Result]


def load(path: Path) -> list[Row]:
    """The rows of one corpus file (header ``locale,intent,promise_date,text``)."""
    rows: list[Row] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, record in enumerate(csv.DictReader(handle), start=2):
            try:
                rows.append(Row(record["locale"], Intent(record["intent"]),
                                date.fromisoformat(record["promise_date"]) if record["promise_date"] else None,
                                record["text"]))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path.name} line {number}: {exc}") from None
    return rows


def run(rows: list[Row]) -> Figures:
    results = []
    for row in rows:
        reading = classify(row.text, locale=row.locale, today=TODAY)
        results.append(Result(row, reading.intent, reading.promise_date, reading.matched))
    per: dict[str, list[int]] = {}
    for result in results:
        tally = per.setdefault(result.row.intent.value, [0, 0])
        tally[0] += result.intent is result.row.intent
        tally[1] += 1
    dated = [r for r in results if r.row.promise_date is not None]
    wrong_actions = sum(1 for r in results if r.acts and not r.right)
    return Figures(
        rows=len(results),
        intent_accuracy=sum(r.intent is r.row.intent for r in results) / len(results),
        date_rows=len(dated),
        date_accuracy=sum(r.right for r in dated) / len(dated) if dated else 1.0,
        wrong_actions=wrong_actions,
        wrong_action_rate=wrong_actions / len(results),
        per_intent={k: (v[0], v[1]) for k, v in sorted(per.items())},
        misses=[r for r in results if not r.right],
    )


def report(name: str, figures: Figures, errors: bool) -> None:
    print(f"== {name}: {figures.rows} replies")
    for intent, (right, total) in figures.per_intent.items():
        print(f"  {intent:<18} {right:>3}/{total:<3} {right / total:6.1%}")
    print(f"  intents            {figures.intent_accuracy:6.1%}")
    print(f"  dates              {figures.date_accuracy:6.1%} of {figures.date_rows} dated promises")
    print(f"  wrong actions      {figures.wrong_actions} ({figures.wrong_action_rate:.1%})")
    if errors:
        counts = Counter(r.row.locale for r in figures.misses)
        print(f"  misses by locale: {dict(counts)}")
        for miss in figures.misses:
            flag = "ACTS " if miss.acts else "     "
            print(f"  {flag}{miss.row.locale} want {miss.row.intent.value}/{miss.row.promise_date} got "
                  f"{miss.intent.value}/{miss.promise_date} [{miss.matched}] {miss.row.text!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=("tuning", "heldout", "both"), default="both")
    parser.add_argument("--errors", action="store_true", help="list the misses")
    args = parser.parse_args(argv)
    names = ("tuning", "heldout") if args.set == "both" else (args.set,)
    for name in names:
        report(name, run(load(SETS[name])), args.errors)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
