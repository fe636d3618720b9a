"""What a borrower is expected to say after each kind of prompt, per language (docs/speech.md).

A grammar is a list of **phrases written the way people write them** ("전화하지
마세요", "我明天还", "i will pay on friday"): :mod:`bot.speech.stt` splits each
phrase into words of the loaded model's vocabulary when it compiles the
grammar (the Korean model's vocabulary is segmented: 하지 + 마세요, 했 + 어요),
and drops a phrase it cannot spell with that vocabulary.  The recogniser then
prefers these phrases; the words it returns go to :func:`bot.nlu.classify`
(which joins the segmented Hangul and Han words again).

Grammars by ``expect`` (the Listen action of a voice script):

* ``yes_no`` — the right-party check and other yes/no questions: yes, no, and
  the replies that can come instead (wrong number, busy, stop calling, who is this);
* ``date`` — "when can you pay?": dates with and without a payment verb, plus
  the common refusals (no money, already paid, call later, stop calling);
* ``intent`` — an open question ("can you pay today?"): every intent, with a
  few dated promises;
* ``digits`` — spoken digits;
* ``None`` — no grammar: free recognition.

Every grammar includes the opt-out phrases: revocation of consent can come at
any point of a call and must be understood wherever it comes.

Phrases are data: to teach the bot a new reply, add it here (and a row to
tests/data/replies.tsv if the classifier needs to learn it too).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["EXPECTS", "grammar_for", "language_of"]

EXPECTS = ("yes_no", "date", "intent", "digits")


def _dedupe(phrases: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for phrase in phrases:
        clean = " ".join(phrase.split())
        if clean:
            seen.setdefault(clean, None)
    return tuple(seen)


# --- Korean -----------------------------------------------------------------------

_KO_AFFIRM = ("네", "예", "네 맞아요", "맞아요", "네 맞습니다", "맞습니다", "네 그래요", "네 본인입니다", "네 접니다",
              "좋아요", "알겠습니다")
_KO_DENY = ("아니요", "아니에요", "아닙니다", "아뇨", "아닌데요")
_KO_OPT_OUT = ("전화하지 마세요", "다시는 전화하지 마세요", "이제 전화하지 마세요", "전화 그만하세요", "연락하지 마세요",
               "문자 보내지 마세요", "수신 거부")
_KO_WRONG = ("잘못 거셨어요", "전화 잘못 거셨어요", "번호 잘못 거셨어요", "그런 사람 없어요", "저는 그 사람 몰라요",
             "본인 아닌데요")
_KO_CALLBACK = ("나중에 다시 전화 주세요", "다시 전화 주세요", "저녁에 다시 전화 주세요", "지금 바빠요", "지금 통화 못 해요",
                "지금 운전 중이에요", "회의 중이에요")
_KO_HELP = ("누구세요", "무슨 일이세요")
_KO_PAID = ("이미 냈어요", "벌써 냈어요", "이미 납부했어요", "어제 냈어요", "어제 입금했어요", "입금했어요", "다 갚았어요",
            "벌써 다 갚았어요", "납부했습니다", "송금했어요")
_KO_DISPUTE = ("제 대출이 아니에요", "대출 받은 적 없어요", "저는 대출 받은 적 없어요", "빌린 적 없어요",
               "저는 돈 빌린 적 없어요", "금액이 틀렸어요", "금액이 이상해요", "사기예요")
_KO_HARDSHIP = ("돈이 없어요", "지금 돈이 없어요", "실직했어요", "직장을 잃었어요", "형편이 어려워요", "요즘 형편이 어려워요",
                "요즘 힘들어요", "병원에 입원했어요", "갚을 돈이 없어요")
_KO_VERBS = ("낼게요", "갚을게요", "입금할게요", "납부할게요")
_KO_WEEKDAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")
_KO_SINO = ("일", "이", "삼", "사", "오", "육", "칠", "팔", "구")


def _ko_day(n: int) -> str:
    tens, units = divmod(n, 10)
    return (("" if tens == 1 else _KO_SINO[tens - 1]) + "십" if tens else "") + (_KO_SINO[units - 1] if units else "")


_KO_DATES = (
    "오늘", "내일", "모레", "글피", "주말에", "월말에", "다음 주에", "이번 주에", "다음 달에",
    *(f"{day}에" for day in _KO_WEEKDAYS),
    *(f"다음 주 {day}에" for day in _KO_WEEKDAYS),
    *(f"이번 주 {day}에" for day in _KO_WEEKDAYS),
    *(f"{_ko_day(n)}일에" for n in range(1, 32)),
)
_KO_SHORT_PROMISES = ("오늘 낼게요", "내일 낼게요", "모레 입금할게요", "금요일에 갚을게요", "다음 주에 낼게요",
                      "다음 주 월요일에 낼게요", "월말에 낼게요", "입금할게요", "갚을게요")

_KO: dict[str, tuple[str, ...]] = {
    "yes_no": _dedupe((*_KO_AFFIRM, *_KO_DENY, *_KO_WRONG, *_KO_CALLBACK, *_KO_OPT_OUT, *_KO_HELP)),
    "date": _dedupe((
        *(f"{d} {v}" for d in _KO_DATES for v in _KO_VERBS[:2]), *_KO_DATES, *_KO_VERBS,
        *_KO_HARDSHIP[:4], *_KO_PAID[:3], *_KO_CALLBACK[:3], *_KO_OPT_OUT[:3], "아니요", "모르겠어요",
    )),
    "intent": _dedupe((
        "네", "예", "아니요", "아니에요", *_KO_PAID, *_KO_SHORT_PROMISES, *_KO_OPT_OUT, *_KO_DISPUTE, *_KO_HARDSHIP,
        *_KO_CALLBACK, *_KO_WRONG, *_KO_HELP,
    )),
    "digits": ("공", "영", *_KO_SINO, "하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉"),
}

# --- English (lower case, no punctuation: how Vosk English models write words) ---------

_EN_AFFIRM = ("yes", "yeah", "yep", "yes it is", "yes speaking", "that is me", "this is me", "correct", "sure",
              "okay", "yes that is right")
_EN_DENY = ("no", "nope", "no it is not", "not me", "no thanks")
_EN_OPT_OUT = ("stop calling me", "do not call me", "do not call me again", "stop calling", "remove me from your list",
               "take me off your list", "leave me alone", "stop")
_EN_WRONG = ("wrong number", "you have the wrong number", "i do not know him", "i do not know her",
             "nobody by that name", "i just got this number")
_EN_CALLBACK = ("call me back", "call me later", "call me back later", "call me tomorrow", "i am busy",
                "i am driving", "i can not talk right now")
_EN_HELP = ("who is this", "what is this about")
_EN_PAID = ("i already paid", "i paid", "i paid yesterday", "i made the payment", "it is paid", "i sent the money")
_EN_DISPUTE = ("this is not my debt", "i do not owe this", "i do not owe anything", "i never took a loan",
               "the amount is wrong", "this is a scam")
_EN_HARDSHIP = ("i lost my job", "i can not afford it", "i can not pay", "i do not have the money",
                "i am in the hospital", "i need more time")
_EN_DAYS = ("today", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
            "next week", "next monday", "next friday", "the end of the month", "this weekend")
_EN_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
                "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
                "eighteenth", "nineteenth", "twentieth", "twenty first", "twenty second", "twenty third",
                "twenty fourth", "twenty fifth", "twenty sixth", "twenty seventh", "twenty eighth", "twenty ninth",
                "thirtieth", "thirty first")

_EN: dict[str, tuple[str, ...]] = {
    "yes_no": _dedupe((*_EN_AFFIRM, *_EN_DENY, *_EN_WRONG, *_EN_CALLBACK, *_EN_OPT_OUT, *_EN_HELP)),
    "date": _dedupe((
        *(f"i will pay {d}" for d in _EN_DAYS), *(f"on {d}" for d in _EN_DAYS), *_EN_DAYS,
        *(f"on the {o}" for o in _EN_ORDINALS), *(f"i will pay on the {o}" for o in _EN_ORDINALS),
        *_EN_HARDSHIP[:3], *_EN_PAID[:2], *_EN_CALLBACK[:3], *_EN_OPT_OUT[:3], "no", "i do not know",
    )),
    "intent": _dedupe((
        "yes", "no", *_EN_PAID, "i will pay today", "i will pay tomorrow", "i will pay on friday",
        "i will pay next week", "i can pay on the fifteenth", *_EN_OPT_OUT, *_EN_DISPUTE, *_EN_HARDSHIP,
        *_EN_CALLBACK, *_EN_WRONG, *_EN_HELP,
    )),
    "digits": ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
}

# --- Chinese (written without spaces; split into the model's words when compiled) -----

_ZH_AFFIRM = ("是", "是的", "对", "对的", "没错", "是我", "我是", "好的", "可以")
_ZH_DENY = ("不是", "不对", "没有", "不是我")
_ZH_OPT_OUT = ("别再打电话了", "不要再打电话了", "不要再给我打电话", "别打了", "不要再联系我")
_ZH_WRONG = ("你打错了", "打错电话了", "这不是他的号码", "我不认识他", "没有这个人")
_ZH_CALLBACK = ("晚点再打", "晚点给我回电话", "我现在在忙", "我在开车", "现在不方便")
_ZH_HELP = ("你们是谁", "什么事")
_ZH_PAID = ("我已经还了", "已经还了", "我昨天还了", "已经转账了")
_ZH_DISPUTE = ("这不是我的贷款", "我没有借过钱", "金额不对", "这是诈骗")
_ZH_HARDSHIP = ("我失业了", "我没钱", "现在没钱还", "我住院了", "能不能宽限几天")
_ZH_DAYS = ("今天", "明天", "后天", "周一", "周二", "周三", "周四", "周五", "周六", "周日", "下周", "下周一", "下周五",
            "月底", "这周末")

_ZH: dict[str, tuple[str, ...]] = {
    "yes_no": _dedupe((*_ZH_AFFIRM, *_ZH_DENY, *_ZH_WRONG, *_ZH_CALLBACK, *_ZH_OPT_OUT, *_ZH_HELP)),
    "date": _dedupe((
        *(f"我{d}还" for d in _ZH_DAYS), *(f"{d}还" for d in _ZH_DAYS), *_ZH_DAYS,
        *(f"{n}号还" for n in ("一", "五", "十", "十五", "二十", "二十五", "三十")),
        *_ZH_HARDSHIP[:3], *_ZH_PAID[:2], *_ZH_CALLBACK[:2], *_ZH_OPT_OUT[:2], "不知道",
    )),
    "intent": _dedupe((
        "是的", "不是", *_ZH_PAID, "我明天还", "我今天还", "我周五还", "我下周还", "我会尽快还", *_ZH_OPT_OUT,
        *_ZH_DISPUTE, *_ZH_HARDSHIP, *_ZH_CALLBACK, *_ZH_WRONG, *_ZH_HELP,
    )),
    "digits": ("零", "一", "幺", "二", "两", "三", "四", "五", "六", "七", "八", "九"),
}

_BY_LANGUAGE: dict[str, dict[str, tuple[str, ...]]] = {"ko": _KO, "en": _EN, "zh": _ZH}


def language_of(locale: str) -> str:
    """``ko-KR`` -> ``ko``; ``zh_Hans_CN`` -> ``zh``."""
    return str(locale).strip().replace("_", "-").split("-", 1)[0].lower()


def grammar_for(locale: str, expect: str | None) -> list[str] | None:
    """The phrases expected after a prompt of kind ``expect`` in ``locale``; None means free recognition.

    ``expect`` is one of :data:`EXPECTS` or None.  A language without tables
    (anything but Korean, English and Chinese) gets None: free recognition.
    Raises ValueError for an unknown ``expect``.
    """
    if expect is None:
        return None
    if expect not in EXPECTS:
        raise ValueError(f"unknown expect {expect!r}; use one of {', '.join(EXPECTS)} or None")
    tables = _BY_LANGUAGE.get(language_of(locale))
    if tables is None:
        return None
    return list(tables[expect])
