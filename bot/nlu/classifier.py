"""``classify``: one borrower reply -> one :class:`Interpretation`.

Layers, each explained in docs/nlu.md:

1. carrier keywords on the whole message (exact, confidence 1.0);
2. rule tables per script present in the text (English and Spanish on Latin letters,
   Chinese on Han characters, Korean on Hangul: a zh-CN borrower who writes
   English is still understood), each hit naming its rule;
3. the promise date, resolved by :mod:`bot.nlu.dates` and bounded to
   ``[today, today + MAX_PROMISE_DAYS]``;
4. one winner by the fixed priority :data:`PRIORITY`.

Pure and fast: precompiled patterns, no I/O, no model, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError

from bot.domain import Channel, Intent, StrEnum
from bot.nlu import lexicon
from bot.nlu.dates import DateMention, find_dates
from bot.nlu.lexicon import Rule
from bot.nlu.normalize import Normalized, keyword_key, normalize, osa_distance

__all__ = ["MAX_PROMISE_DAYS", "PRIORITY", "REVIEW_BELOW", "Context", "Interpretation", "LocaleInfo", "classify", "locale_info"]

# A promise further out than this is not a promise the bot can hold anyone to;
# the reply is still a promise, but without a date and with lower confidence.
MAX_PROMISE_DAYS = 90


class Context(StrEnum):
    """Where the reply came from, which changes what a bare "yes" means."""

    SMS = "sms"  # carrier keywords apply: YES is the opt-in keyword
    VOICE = "voice"  # speech-recognised answer to an open question
    YES_NO = "yes_no"  # answer to a yes/no question: "yes"/"네"/"是的" is affirm


@dataclass(frozen=True, slots=True)
class Interpretation:
    """What a reply means.

    ``matched`` names the rule (and the date form) that decided, never text
    from the reply.  ``scope`` is the medium an opt-out names ("stop calling"
    -> voice); ``None`` means the channel the reply came on, unless
    ``all_channels`` says the borrower asked for no contact at all ("leave me
    alone", "stop calling and texting").  ``amount`` is the sum written with a
    currency mark ("$50", "500元", "5만원"), in major units of the loan's currency.
    """

    intent: Intent
    promise_date: date | None = None
    confidence: float = 0.5
    matched: str = ""
    scope: Channel | None = None
    all_channels: bool = False
    amount: Decimal | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, got {self.confidence}")
        if self.promise_date is not None and self.intent is not Intent.PROMISE_TO_PAY:
            raise ValueError("only a promise_to_pay carries a promise_date")

    def to_json(self) -> dict[str, object]:
        """The ``bot intent --json`` shape."""
        return {
            "intent": self.intent.value,
            "promise_date": self.promise_date.isoformat() if self.promise_date else None,
            "confidence": self.confidence,
            "matched": self.matched,
        }


# --- locales ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocaleInfo:
    tag: str
    language: str
    day_first: bool  # "12/10" is 12 October (en-GB) rather than December 10 (en-US)


@lru_cache(maxsize=256)
def locale_info(tag: str) -> LocaleInfo:
    """Parse a BCP 47 tag with Babel; the CLDR short date pattern gives the d/M order.

    Raises ValueError for anything Babel cannot parse.
    """
    cleaned = tag.strip().replace("_", "-") if isinstance(tag, str) else ""
    if not cleaned:
        raise ValueError("locale is empty; use a tag such as en-US, en-GB, zh-CN or ko-KR")
    try:
        locale = Locale.parse(cleaned, sep="-")
    except (ValueError, UnknownLocaleError):
        raise ValueError(f"unknown locale {tag!r}; use a tag such as en-US, en-GB, zh-CN or ko-KR") from None
    pattern = locale.date_formats["short"].pattern
    day_first = 0 <= pattern.find("d") < pattern.find("M")
    return LocaleInfo(str(locale), locale.language, day_first)


# --- priority -----------------------------------------------------------------

_DATED = "promise_to_pay+date"
_UNDATED = "promise_to_pay"

# Highest first; the reasons are in docs/nlu.md ("Priority").
PRIORITY: tuple[str, ...] = (
    Intent.OPT_OUT.value,
    Intent.OPT_IN.value,
    Intent.WRONG_NUMBER.value,
    Intent.DISPUTE.value,
    Intent.PAID.value,
    _DATED,
    Intent.HARDSHIP.value,
    Intent.CALLBACK_REQUEST.value,
    Intent.IDENTITY_QUESTION.value,
    Intent.BALANCE_INQUIRY.value,
    Intent.HELP.value,
    _UNDATED,
    Intent.AFFIRM.value,
    Intent.DENY.value,
    Intent.OTHER.value,
)
#: Below this confidence an acting reading (a payment claim, a wrong number, a
#: dispute, a dated promise) is not acted on: the reply goes to a person (``other``).
REVIEW_BELOW = 0.6
# A payment claim the borrower is unsure of ("I think I paid?", "不知道还了没有") is not one.
_UNSURE = re.compile(
    r"\b(?:not sure|unsure|might have|may have|i think|i guess|maybe|perhaps|probably|do not know if|"
    r"do not remember|can not remember|did i|have i|did we|was it|if i)\b|"
    r"不知道|不确定|好像|可能|是不是|有没有|"
    r"모르겠|같은데|같아요|아마|했나|했는지|"
    r"\b(?:no se si|creo que|tal vez|quizas|a lo mejor|no estoy segur[oa]|no recuerdo)\b"
)
_ACTING = frozenset({Intent.PAID, Intent.WRONG_NUMBER, Intent.DISPUTE})
# Questions with an SMS answer of their own; in a call (voice, yes_no) they are ``help``.
_SMS_QUESTIONS = frozenset({Intent.IDENTITY_QUESTION, Intent.BALANCE_INQUIRY})

# Intents whose co-occurrence with the winner makes the reading less certain.
_SUBSTANTIVE = frozenset({
    Intent.OPT_OUT, Intent.WRONG_NUMBER, Intent.DISPUTE, Intent.PAID, Intent.PROMISE_TO_PAY, Intent.HARDSHIP,
    Intent.CALLBACK_REQUEST,
})


@dataclass(frozen=True, slots=True)
class _Hit:
    intent: Intent
    name: str
    confidence: float
    scope: Channel | None = None
    all_channels: bool = False


# --- script detection, negation, clauses ---------------------------------------

_LATIN = re.compile(r"[a-z]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_EN_NEGATED = re.compile(r"\b(?:not|never)\s+(?:\w+\s+)?$")
_ZH_NEGATED = re.compile(r"(?:没有|没|不|未|别|无)[^\s，,。.!！?？]{0,3}$")
_KO_NEGATED = re.compile(r"(?:안|못)\s*$")
_ES_NEGATED = re.compile(r"\b(?:no|nunca|ni|tampoco)\s+(?:\w+\s+){0,2}$")
_CLAUSE_BREAK = re.compile(r"[,.;!?。，；！？:：\n]|\bbut\b|\bhowever\b|\bpero\b|但是|可是|不过|但|하지만|그런데")
_CLAUSE_NEGATION = re.compile(r"\b(?:not|never)\b|[没不未别]|안\s|못\s|않|없")


_NEGATION_BEFORE = {"en": _EN_NEGATED, "zh": _ZH_NEGATED, "ko": _KO_NEGATED, "es": _ES_NEGATED}
_NEGATION_WINDOW = 32  # characters before a match worth looking at (the patterns reach back a word or two)


def _negated(text: str, start: int, rule: Rule) -> bool:
    """A negation just before the match ("have *not* paid", "*没*还", "*안* 냈어요")."""
    return bool(_NEGATION_BEFORE[rule.language].search(text[max(0, start - _NEGATION_WINDOW) : start]))


def _clause_bounds(text: str, position: int) -> tuple[int, int]:
    start = 0
    for match in _CLAUSE_BREAK.finditer(text):
        if match.end() <= position:
            start = match.end()
        elif match.start() >= position:
            return start, match.start()
    return start, len(text)


# --- scope of an opt-out -------------------------------------------------------

_MEDIA_WORDS: tuple[tuple[re.Pattern[str], Channel | None], ...] = (
    (re.compile(r"\b(?:call|calls|calling|phone|phoning|ring|ringing|robocalls?|llam\w*|marquen)\b|电话|打来|来电|打了|"
                r"打我|打扰|打|전화"), Channel.VOICE),
    (re.compile(r"\b(?:text|texts|texting|message|messages|messaging|sms|spamming|mensajes?|textos?|mand\w*|envi\w*|"
                r"escrib\w*)\b|短信|信息|消息|发|문자"), Channel.SMS),
    (re.compile(r"\b(?:e-?mails?|e-?mailing|mail|correos?)\b"), Channel.EMAIL),
    (re.compile(r"\b(?:contact|contacted|contacting|harass|harassing|bother|bothering|stalking|hounding|pestering|"
                r"contact\w*|molest\w*|lista|baja)\b|联系|骚扰|烦|연락"), None),
)


def _scope(text: str, start: int, end: int) -> tuple[Channel | None, bool]:
    """The medium named in an opt-out and just after it, and whether it named several."""
    _, clause_end = _clause_bounds(text, start)
    window = text[start : max(end, min(clause_end, end + 40))]
    named: set[Channel] = set()
    everything = False
    for pattern, channel in _MEDIA_WORDS:
        if pattern.search(window):
            if channel is None:
                everything = True
            else:
                named.add(channel)
    if everything or len(named) > 1:
        return None, True
    return (named.pop() if named else None), False


# --- layers ---------------------------------------------------------------------


def _keyword(norm: Normalized, info: LocaleInfo, context: Context) -> Interpretation | None:
    key = keyword_key(norm.bare)
    if not key:
        return None
    sms = context is Context.SMS
    if key in lexicon.OPT_OUT_KEYWORDS:
        return Interpretation(Intent.OPT_OUT, confidence=1.0 if sms else 0.95,
                              matched=f"keyword:{lexicon.OPT_OUT_KEYWORDS[key]}")
    if sms and info.language == "zh" and key in lexicon.ZH_LOCALE_OPT_OUT_KEYWORDS:
        return Interpretation(Intent.OPT_OUT, confidence=1.0,
                              matched=f"keyword:{lexicon.ZH_LOCALE_OPT_OUT_KEYWORDS[key]}")
    if sms and key in lexicon.OPT_IN_KEYWORDS:
        return Interpretation(Intent.OPT_IN, confidence=1.0, matched=f"keyword:{lexicon.OPT_IN_KEYWORDS[key]}")
    if key in lexicon.HELP_KEYWORDS:
        return Interpretation(Intent.HELP, confidence=1.0 if sms else 0.95,
                              matched=f"keyword:{lexicon.HELP_KEYWORDS[key]}")
    near = _near_opt_out_keyword(key)
    if near is not None:
        return Interpretation(Intent.OPT_OUT, confidence=0.8, matched=f"keyword~{near}")
    return None


_REPEATS = re.compile(r"(.)\1+")
_COLLAPSED_OPT_OUT = {_REPEATS.sub(r"\1", k): v for k, v in lexicon.OPT_OUT_KEYWORDS.items() if k.isascii()}


def _near_opt_out_keyword(key: str) -> str | None:
    """A misspelt opt-out keyword, read conservatively.

    Letters held down ("stoppp", "quitt") always count; a single slip
    ("unsubscibe", "cancle") only for keywords of six letters or more, because
    one letter away from "stop" are "shop", "step" and "atop".
    """
    if not key.isascii() or not key.isalpha():
        return None
    collapsed = _REPEATS.sub(r"\1", key)
    if collapsed in _COLLAPSED_OPT_OUT:
        return _COLLAPSED_OPT_OUT[collapsed]
    for keyword, label in lexicon.OPT_OUT_KEYWORDS.items():
        if len(keyword) >= 6 and keyword.isascii() and osa_distance(key, keyword, 1) <= 1:
            return label
    return None


def _rule_tables(text: str) -> Iterable[Rule]:
    if _LATIN.search(text):
        yield from lexicon.EN_RULES
        yield from lexicon.ES_RULES
    if _HAN.search(text):
        yield from lexicon.ZH_RULES
    if _HANGUL.search(text):
        yield from lexicon.KO_RULES


def _rule_hits(text: str) -> list[_Hit]:
    hits: list[_Hit] = []
    for rule in _rule_tables(text):
        for match in rule.pattern.finditer(text):
            if rule.negatable and _negated(text, match.start(), rule):
                continue
            if rule.unless_before is not None:
                clause_start, _ = _clause_bounds(text, match.start())
                if rule.unless_before.search(text, clause_start, match.start()):
                    continue
            scope, everywhere = rule.scope, rule.all_channels
            if rule.media:
                scope, everywhere = _scope(text, match.start(), match.end())
            hits.append(_Hit(rule.intent, rule.name, rule.confidence, scope, everywhere))
            break
    return hits


_EN_WORDS = re.compile(r"[a-z']+")
_STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "quit", "cancel", "optout"})
_STOP_FILLER = _STOP_WORDS | frozenset({
    "please", "it", "now", "just", "all", "ok", "okay", "thanks", "thank", "you", "the", "messages", "texts",
    "already", "seriously", "right", "immediately", "this", "that", "them", "i", "said", "me", "sms", "soon",
    "omg", "god", "damn", "hey", "no", "more", "and",
})


def _stop_clause(text: str) -> _Hit | None:
    """A clause that is nothing but "stop" and politeness ("please stop", "STOP STOP", "Stop. I paid")."""
    if not _LATIN.search(text):
        return None
    for clause in _CLAUSE_BREAK.split(text):
        words = set(_EN_WORDS.findall(clause or ""))
        if words & _STOP_WORDS and words <= _STOP_FILLER:
            return _Hit(Intent.OPT_OUT, "en.opt_out.stop_only", 0.95)
    return None


_EN_PAY_VERB = re.compile(r"\b(?:pay|paying|send|sending|transfer|transferring|deposit|wire|settle)\b")
_ZH_PAY_VERB = re.compile(lexicon.ZH_REPAY + r"|付款|付钱|支付|转账|打款|打钱|缴")
_KO_PAY_VERB = re.compile(r"낼|내겠|갚|납부|입금|송금|보낼|결제|지불")
_ES_PAY_VERB = re.compile(r"\b(?:pago|pagar|pagare|deposito|depositar|depositare|transfiero|transferir|mando|mandar|"
                          r"envio|enviar|abono|abonar|liquido|liquidar|hago el pago|hare el pago)\b")


def _pay_with_date(text: str) -> _Hit | None:
    """A payment verb that is not negated; called when the reply has a date ("pay Friday", "15号还")."""
    for pattern, name, negation in (
        (_EN_PAY_VERB, "en.promise_to_pay.pay_with_date", _EN_NEGATED),
        (_ZH_PAY_VERB, "zh.promise_to_pay.repay_with_date", _ZH_NEGATED),
        (_KO_PAY_VERB, "ko.promise_to_pay.pay_with_date", _KO_NEGATED),
        (_ES_PAY_VERB, "es.promise_to_pay.pay_with_date", _ES_NEGATED),
    ):
        for match in pattern.finditer(text):
            if not negation.search(text[max(0, match.start() - _NEGATION_WINDOW) : match.start()]):
                return _Hit(Intent.PROMISE_TO_PAY, name, 0.85)
    return None


_DATE_FILLER_EN = frozenset({
    "on", "by", "the", "ok", "okay", "maybe", "probably", "until", "till", "before", "at", "latest", "sure", "i",
    "think", "hopefully", "around", "about", "is", "that", "fine", "how", "works", "for", "you", "then", "or",
    "and", "no", "later", "than", "yes", "yeah", "it", "will", "be", "should", "it's", "good", "with", "me",
    "el", "la", "para", "antes", "del", "de", "a", "mas", "tardar", "si", "ok", "creo", "que",
})
_DATE_FILLER_CJK = re.compile(
    r"吧|可以吗|可以|好吗|行吗|好|的|之前|前|左右|大概|吗|呢|啊|行|再|就|在|我|嗯|"
    r"에요|이요|까지요|까지|쯤|정도|에|요|네"
)
_NON_WORD = re.compile(r"[\W_]+")


def _date_only(text: str, mentions: list[DateMention]) -> bool:
    """True when, dates aside, the reply is only filler ("Friday?", "by the 15th", "明天吧")."""
    rest = text
    for mention in sorted(mentions, key=lambda m: m.start, reverse=True):
        rest = rest[: mention.start] + " " + rest[mention.end :]
    words = set(_EN_WORDS.findall(rest))
    if not words <= _DATE_FILLER_EN:
        return False
    rest = _EN_WORDS.sub(" ", rest)
    rest = _DATE_FILLER_CJK.sub("", rest)
    return not _NON_WORD.sub("", rest)


def _choose_date(text: str, mentions: list[DateMention]) -> DateMention | None:
    """The first date outside a negated clause ("can't today, but Friday"), else the first."""
    if not mentions:
        return None
    for mention in mentions:
        start, end = _clause_bounds(text, mention.start)
        if not _CLAUSE_NEGATION.search(text[start:end]):
            return mention
    return mentions[0]


def _bounded(mention: DateMention, today: date) -> tuple[date | None, str]:
    if mention.value is None:
        return None, "impossible"
    if mention.value < today:
        return None, "past"
    if mention.value > today + timedelta(days=MAX_PROMISE_DAYS):
        return None, "too_far"
    return mention.value, ""


_AMOUNT_PATTERNS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"[$£€¥₩]\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?"), 1),
    (re.compile(r"(\d+)(?:\.(\d{1,2}))?\s?万\s?(?:元|块|人民币)"), 10000),
    (re.compile(r"(\d+)(?:\.(\d))?\s?만\s?원"), 10000),
    (re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s?(?:dollars?|bucks|usd|pounds?|gbp|euros?|eur|元|块|rmb|원)"),
     1),
)


def _amount(text: str) -> Decimal | None:
    for pattern, multiplier in _AMOUNT_PATTERNS:
        match = pattern.search(text)
        if match:
            whole = match.group(1).replace(",", "")
            fraction = match.group(2) or ""
            value = Decimal(f"{whole}.{fraction}" if fraction else whole) * multiplier
            return value.quantize(Decimal(1)) if value == value.to_integral_value() else value
    return None


_CJK_PARTICLES = re.compile(r"(?<=[\u4e00-\u9fff])(?:了|啊|呀|吧|呢|哦)+$")


def _answer(norm: Normalized, context: Context) -> _Hit | None:
    """Yes/no answers (voice, yes_no) and acknowledgements ("ok", "thanks", "好的")."""
    phrase = " ".join(_NON_WORD.sub(" ", norm.text).split())
    phrase = _CJK_PARTICLES.sub("", phrase) or phrase
    if context is not Context.SMS:
        first = phrase.split(" ", 1)[0] if phrase else ""
        if phrase in lexicon.YES_PHRASES or (not phrase and norm.emoji_yes):
            return _Hit(Intent.AFFIRM, "answer.yes", 0.95)
        if phrase in lexicon.NO_PHRASES or (not phrase and norm.emoji_no):
            return _Hit(Intent.DENY, "answer.no", 0.95)
        if first in lexicon.YES_PHRASES and first not in {"i", "right", "ok", "okay"}:
            return _Hit(Intent.AFFIRM, "answer.yes_and_more", 0.75)
        if first in lexicon.NO_PHRASES and first not in {"i", "not"}:
            return _Hit(Intent.DENY, "answer.no_and_more", 0.75)
    if phrase in lexicon.ACKS or phrase in lexicon.YES_PHRASES or phrase in lexicon.NO_PHRASES:
        return _Hit(Intent.OTHER, "other.acknowledgement", 0.8)
    return None


# --- the API --------------------------------------------------------------------


def classify(text: str, *, locale: str, today: date, context: str = "sms") -> Interpretation:
    """Classify one reply.

    ``today`` is the reply's date in the borrower's time zone (the caller
    converts; passing a ``datetime`` is refused because a UTC instant can be
    the wrong day).  ``context`` is one of :class:`Context`.  Raises
    ValueError for an unknown locale or context.
    """
    if isinstance(today, datetime) or not isinstance(today, date):
        raise TypeError("today must be a date in the borrower's zone, not a datetime")
    ctx = Context(context)
    info = locale_info(locale)
    norm = normalize(text if isinstance(text, str) else "")
    if not norm.bare:
        if norm.had_symbols:
            answer = _answer(norm, ctx)
            if answer is not None and answer.intent in (Intent.AFFIRM, Intent.DENY):
                return Interpretation(answer.intent, confidence=0.8, matched="answer.emoji")
            return Interpretation(Intent.OTHER, confidence=0.9, matched="other.emoji_only")
        if "?" in norm.text:
            return Interpretation(Intent.HELP, confidence=0.5, matched="help.question_mark")
        return Interpretation(Intent.OTHER, confidence=1.0, matched="other.empty")

    keyword = _keyword(norm, info, ctx)
    if keyword is not None:
        return keyword

    hits = _rule_hits(norm.text)
    stop = _stop_clause(norm.text)
    if stop is not None:
        hits.append(stop)

    mentions = find_dates(norm.text, today=today, day_first=info.day_first)
    mention = _choose_date(norm.text, mentions)
    promise_date: date | None = None
    date_problem = ""
    if mention is not None:
        promise_date, date_problem = _bounded(mention, today)
        pay = _pay_with_date(norm.text)
        if pay is not None:
            hits.append(pay)
        if not hits and _date_only(norm.text, mentions):
            hits.append(_Hit(Intent.PROMISE_TO_PAY, "date_only", 0.6))
    answer = _answer(norm, ctx)
    if answer is not None:
        hits.append(answer)

    result = _decide(hits, norm, promise_date, date_problem, mention)
    if ctx is not Context.SMS and result.intent in _SMS_QUESTIONS:
        # in a call the script answers questions itself, after it has checked who is on the line
        return replace(result, intent=Intent.HELP)
    return result


def _decide(
    hits: list[_Hit],
    norm: Normalized,
    promise_date: date | None,
    date_problem: str,
    mention: DateMention | None,
) -> Interpretation:
    by_key: dict[str, _Hit] = {}
    for hit in hits:
        key = hit.intent.value
        if hit.intent is Intent.PROMISE_TO_PAY:
            key = _DATED if promise_date is not None else _UNDATED
        if key not in by_key or hit.confidence > by_key[key].confidence:
            by_key[key] = hit
    winner_key = next((key for key in PRIORITY if key in by_key), None)
    if winner_key is None:
        return Interpretation(Intent.OTHER, confidence=0.5, matched="other.no_rule")
    hit = by_key[winner_key]
    confidence = hit.confidence
    matched = hit.name
    date_out: date | None = None
    if hit.intent is Intent.PROMISE_TO_PAY:
        if promise_date is not None:
            date_out = promise_date
            matched += f"|date:{mention.form}" if mention else ""
        elif date_problem:
            confidence = min(confidence, 0.5)
            matched += f"|date:{date_problem}"
        else:
            confidence = min(confidence, 0.7)
    if norm.corrected:
        confidence -= 0.1
    rivals = {h.intent for h in hits if h.intent in _SUBSTANTIVE and h.intent is not hit.intent}
    if rivals:
        confidence -= 0.1
    confidence = round(min(1.0, max(0.1, confidence)), 2)
    acting = hit.intent in _ACTING or date_out is not None
    if acting and hit.intent is Intent.PAID and _UNSURE.search(norm.text):
        return Interpretation(Intent.OTHER, confidence=0.5, matched=f"other.unsure|from:{hit.name}")
    if acting and confidence < REVIEW_BELOW:
        return Interpretation(Intent.OTHER, confidence=confidence, matched=f"other.low_confidence|from:{hit.name}")
    return Interpretation(
        hit.intent,
        promise_date=date_out,
        confidence=confidence,
        matched=matched,
        scope=hit.scope if hit.intent is Intent.OPT_OUT else None,
        all_channels=hit.all_channels if hit.intent is Intent.OPT_OUT else False,
        amount=_amount(norm.text),
    )
