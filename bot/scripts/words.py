"""Words the script checks look for, per language.

These lists live in code on purpose: a script author cannot switch the checks off by
editing a YAML file (a script may only *add* words, with ``debt_words``).  A locale
whose language has no list here cannot be loaded; add one in a reviewed change.

* ``DEBT_WORDS``: anything that says there is a debt, a loan, money owed or a
  collection.  None of them may be said before the right party is confirmed, nor in
  the voicemail message (compliance-rules.md: third parties, limited-content message).
  The list is deliberately broad ("payment", "account", "due"): a false alarm costs a
  reworded prompt, a miss costs a disclosure to a stranger.
* ``KEYPAD_WORDS``: a keypad prompt must say that keys are used ("press", "按", "누르").

English, Spanish and French words match as whole words (so the list spells out plurals
and other forms);
Chinese and Korean ones match anywhere in the text (no spaces between words).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["DEBT_WORDS", "KEYPAD_WORDS", "debt_words_in", "has_keypad_word", "language_of"]

DEBT_WORDS: dict[str, tuple[str, ...]] = {
    "en": (
        "debt", "debts", "debtor", "loan", "loans", "lend", "lending", "borrow", "borrowed", "owe", "owes", "owed",
        "owing", "collect", "collects", "collecting", "collection", "collections", "collector", "overdue",
        "past due", "due", "late", "arrears", "balance", "outstanding", "payment", "payments", "pay", "paid",
        "paying", "repay", "repayment", "installment", "installments", "instalment", "amount", "bill", "account",
        "credit", "default", "delinquent", "money",
    ),
    "zh": (
        "债", "欠", "贷", "借款", "还款", "还钱", "催收", "催缴", "逾期", "到期", "金额", "款项", "账单", "账户",
        "付款", "缴费", "支付", "分期", "本金", "利息", "信用", "违约", "钱",
    ),
    "ko": (
        "빚", "채무", "채권", "대출", "빌린", "연체", "상환", "납부", "결제", "금액", "추심", "미납", "만기", "청구",
        "잔액", "잔금", "계좌", "할부", "이자", "원금", "신용", "갚", "돈",
    ),
    "es": (
        "deuda", "deudas", "deudor", "préstamo", "préstamos", "prestamo", "prestar", "prestado", "debe", "debes",
        "deber", "adeuda", "adeudo", "cobro", "cobros", "cobrar", "cobranza", "cobranzas", "cobrador", "vencido",
        "vencida", "vencimiento", "vence", "venció", "atraso", "atrasado", "mora", "saldo", "pendiente", "pago",
        "pagos", "pagar", "pague", "pagó", "pagado", "pagando", "abono", "cuota", "cuotas", "monto", "importe",
        "factura", "cuenta", "crédito", "credito", "dinero", "plazo",
    ),
    "fr": (
        "dette", "dettes", "débiteur", "prêt", "prêts", "pret", "emprunt", "emprunté", "dû", "due", "dus", "doit",
        "devez", "recouvrement", "recouvrer", "créance", "créancier", "retard", "impayé", "impayée", "échéance",
        "échu", "solde", "paiement", "paiements", "payer", "payez", "payé", "remboursement", "rembourser",
        "versement", "versements", "montant", "facture", "compte", "crédit", "argent",
    ),
}

KEYPAD_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("press", "enter", "keypad", "key"),
    "zh": ("按", "输入", "键"),
    "ko": ("누르", "눌러", "입력", "버튼"),
    "es": ("presione", "marque", "oprima", "teclado", "tecla"),
    "fr": ("appuyez", "composez", "clavier", "touche"),
}

_SPACED = frozenset({"en", "es", "fr"})


def language_of(locale: str) -> str:
    return locale.split("-")[0].lower()


@lru_cache(maxsize=32)
def _pattern(language: str, extra: tuple[str, ...]) -> re.Pattern[str]:
    words = sorted({*DEBT_WORDS[language], *extra}, key=len, reverse=True)
    body = "|".join(re.escape(w.lower()) for w in words)
    if language in _SPACED:
        return re.compile(rf"(?<![\w])(?:{body})(?![\w])")
    return re.compile(body)


def debt_words_in(text: str, language: str, extra: Iterable[str] = ()) -> list[str]:
    """The debt words found in ``text`` (lower-cased, each once, in order of appearance)."""
    found: list[str] = []
    for match in _pattern(language, tuple(sorted(extra))).finditer(text.lower()):
        if match.group(0) not in found:
            found.append(match.group(0))
    return found


def has_keypad_word(text: str, language: str) -> bool:
    lowered = text.lower()
    if language in _SPACED:
        return any(re.search(rf"(?<![\w]){re.escape(w)}", lowered) for w in KEYPAD_WORDS[language])
    return any(w in lowered for w in KEYPAD_WORDS[language])
