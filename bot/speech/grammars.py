"""What a borrower is expected to say after each kind of prompt, per language (docs/speech.md).

A grammar is a list of **phrases written the way people write them** ("전화하지
마세요", "我明天还", "i will pay on friday"): :mod:`bot.speech.stt` splits each
phrase into words of the loaded model's vocabulary when it compiles the
grammar (the Korean model's vocabulary is segmented: 전화하지 -> 전화하 + 지),
and drops a phrase it cannot spell with that vocabulary.  The recogniser then
prefers these phrases; the words it returns go to :func:`bot.nlu.classify`
(which joins the segmented Hangul and Han words again).

The phrases come in groups, one per intent (:func:`phrase_groups`; Korean
dates in several smaller groups, ``promise_to_pay:weekday`` ...):
:func:`bot.speech.understand` decodes each group as a grammar of its own and
lets the best-fitting group win.  :func:`grammar_for` is every group at once,
for a single decode.

Grammars by ``expect`` (the Listen action of a voice script):

* ``yes_no`` — the right-party check and other yes/no questions: yes, no, and
  the replies that can come instead (wrong number, busy, stop calling, who is this);
* ``date`` — "when can you pay?": dates with and without a payment verb, plus
  the common other answers (no, no money, already paid, call later, stop calling);
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

__all__ = ["EXPECTS", "filler_for", "grammar_for", "intent_of", "language_of", "phrase_groups"]

EXPECTS = ("yes_no", "date", "intent", "digits")


def _dedupe(phrases: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for phrase in phrases:
        clean = " ".join(phrase.split())
        if clean:
            seen.setdefault(clean, None)
    return tuple(seen)


def _common_groups(*, affirm: tuple[str, ...], deny: tuple[str, ...], opt_out: tuple[str, ...],
                   wrong: tuple[str, ...], callback: tuple[str, ...], help: tuple[str, ...], paid: tuple[str, ...],
                   dispute: tuple[str, ...], hardship: tuple[str, ...], promises: tuple[str, ...],
                   yes: tuple[str, ...], no: tuple[str, ...]) -> dict[str, dict[str, tuple[str, ...]]]:
    """The ``yes_no`` and ``intent`` groups, the same in every language (``date`` and ``digits`` are not)."""
    return {
        "yes_no": {"affirm": affirm, "deny": deny, "wrong_number": wrong, "callback_request": callback,
                   "opt_out": opt_out, "help": help},
        "intent": {"paid": paid, "promise_to_pay": promises, "opt_out": opt_out, "dispute": dispute,
                   "hardship": hardship, "callback_request": callback, "wrong_number": wrong, "help": help,
                   "affirm": yes, "deny": no},
    }


# --- Korean -----------------------------------------------------------------------

_KO_AFFIRM = ("네", "예", "네 맞아요", "맞아요", "네 맞습니다", "맞습니다", "네 그래요", "그래요", "네 본인입니다",
              "본인입니다", "네 접니다", "예 맞습니다", "좋아요", "알겠습니다")
_KO_DENY = ("아니요", "아니에요", "아닙니다", "아님니다", "아뇨", "아닌데요", "틀려요", "아니요 틀려요",
            "틀렸어요")  # 아님니다: 아닙니다 as pronounced
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


# Dates in groups of a kind: a group is decoded as one grammar, and a smaller
# grammar keeps the decoder from splicing the start of one date onto another.
_KO_DATE_KINDS: dict[str, tuple[str, ...]] = {
    "relative": ("오늘", "내일", "모레", "글피"),
    "weekday": tuple(f"{day}에" for day in _KO_WEEKDAYS),
    "next_week": (*(f"다음 주 {day}에" for day in _KO_WEEKDAYS), "다음 주에"),
    "this_week": (*(f"이번 주 {day}에" for day in _KO_WEEKDAYS), "주말에", "월말에", "이번 주에", "다음 달에"),
    "day_of_month": tuple(f"{_ko_day(n)}일에" for n in range(1, 32)),
}
_KO_DATES = tuple(d for dates in _KO_DATE_KINDS.values() for d in dates)


def _ko_promises(dates: tuple[str, ...]) -> tuple[str, ...]:
    """Each date with the two commonest verbs, and alone (but "이 일에" alone is "about this matter")."""
    alone = (d for d in dates if d not in ("일일에", "이일에", "이번 주에", "다음 달에"))  # "next month" is no date
    return (*(f"{d} {v}" for d in dates for v in _KO_VERBS[:2]), *alone)


_KO_SHORT_PROMISES = ("오늘 낼게요", "내일 낼게요", "모레 입금할게요", "금요일에 갚을게요", "다음 주에 낼게요",
                      "다음 주 월요일에 낼게요", "월말에 낼게요", "입금할게요", "갚을게요")

_KO: dict[str, dict[str, tuple[str, ...]]] = {
    **_common_groups(affirm=_KO_AFFIRM, deny=_KO_DENY, opt_out=_KO_OPT_OUT, wrong=_KO_WRONG, callback=_KO_CALLBACK,
                     help=_KO_HELP, paid=_KO_PAID, dispute=_KO_DISPUTE, hardship=_KO_HARDSHIP,
                     promises=_KO_SHORT_PROMISES, yes=("네", "예"), no=("아니요", "아니에요")),
    "date": {
        # no group of bare verbs ("낼게요"): it would win over "내일", which sounds much the same
        **{f"promise_to_pay:{kind}": _ko_promises(dates) for kind, dates in _KO_DATE_KINDS.items()},
        "hardship": _KO_HARDSHIP[:5], "paid": _KO_PAID[:4], "callback_request": _KO_CALLBACK[:4],
        "opt_out": _KO_OPT_OUT[:4], "deny": _KO_DENY[:3],
    },
    "digits": {"other": ("공", "영", *_KO_SINO, "하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉")},
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

_EN: dict[str, dict[str, tuple[str, ...]]] = {
    **_common_groups(affirm=_EN_AFFIRM, deny=_EN_DENY, opt_out=_EN_OPT_OUT, wrong=_EN_WRONG, callback=_EN_CALLBACK,
                     help=_EN_HELP, paid=_EN_PAID, dispute=_EN_DISPUTE, hardship=_EN_HARDSHIP,
                     promises=("i will pay today", "i will pay tomorrow", "i will pay on friday",
                               "i will pay next week", "i can pay on the fifteenth"),
                     yes=("yes", "yeah"), no=("no", "nope")),
    "date": {
        "promise_to_pay": (*(f"i will pay {d}" for d in _EN_DAYS), *(f"on {d}" for d in _EN_DAYS),
                           *(f"on the {o}" for o in _EN_ORDINALS), *(f"i will pay on the {o}" for o in _EN_ORDINALS)),
        "hardship": _EN_HARDSHIP[:4], "paid": _EN_PAID[:3], "callback_request": _EN_CALLBACK[:4],
        "opt_out": _EN_OPT_OUT[:4],
    },
    "digits": {"other": ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")},
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

_ZH: dict[str, dict[str, tuple[str, ...]]] = {
    **_common_groups(affirm=_ZH_AFFIRM, deny=_ZH_DENY, opt_out=_ZH_OPT_OUT, wrong=_ZH_WRONG, callback=_ZH_CALLBACK,
                     help=_ZH_HELP, paid=_ZH_PAID, dispute=_ZH_DISPUTE, hardship=_ZH_HARDSHIP,
                     promises=("我明天还", "我今天还", "我周五还", "我下周还", "我会尽快还"),
                     yes=("是的", "对"), no=("不是", "没有")),
    "date": {
        "promise_to_pay": (*(f"我{d}还" for d in _ZH_DAYS), *(f"{d}还" for d in _ZH_DAYS),
                           *(f"{n}号还" for n in ("一", "五", "十", "十五", "二十", "二十五", "三十"))),
        "hardship": _ZH_HARDSHIP[:4], "paid": _ZH_PAID[:3], "callback_request": _ZH_CALLBACK[:3],
        "opt_out": _ZH_OPT_OUT[:3],
    },
    "digits": {"other": ("零", "一", "幺", "二", "两", "三", "四", "五", "六", "七", "八", "九")},
}

_BY_LANGUAGE: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {"ko": _KO, "en": _EN, "zh": _ZH}

# The garbage model: common syllables, each a word of the Korean model, that may follow one
# another freely.  Speech outside every group fits it better than any group's phrases; the
# margin between the two is what acceptance is calibrated on (docs/speech.md).  Chosen as
# common Korean syllables in general, not from any reply of the tuning or held-out sets.
_KO_FILLER = tuple(
    "가 각 간 감 강 개 거 게 고 공 과 관 구 국 그 기 길 김 까 나 날 남 내 너 네 노 누 는 니 다 단 달 대 더 데 도 동 "
    "되 된 두 드 들 등 디 때 또 라 람 래 러 레 로 료 루 르 를 리 마 만 말 매 머 면 명 모 목 무 문 물 미 민 바 박 반 "
    "발 방 배 버 번 베 보 본 부 분 비 빠 사 산 상 새 생 서 선 성 세 소 수 스 시 식 신 실 심 아 안 알 야 양 어 언 얼 "
    "업 없 에 여 연 열 영 예 오 와 요 우 운 원 위 유 으 은 을 음 의 이 인 일 있 자 작 장 재 저 적 전 점 정 제 조 좀 "
    "주 중 지 진 집 차 참 처 천 체 초 최 추 치 카 커 코 크 타 터 토 트 파 편 포 프 하 한 할 함 해 했 행 허 현 호 화 "
    "회 후 히".split())
_FILLERS: dict[str, tuple[str, ...]] = {"ko": _KO_FILLER}


def language_of(locale: str) -> str:
    """``ko-KR`` -> ``ko``; ``zh_Hans_CN`` -> ``zh``."""
    return str(locale).strip().replace("_", "-").split("-", 1)[0].lower()


def intent_of(label: str) -> str:
    """The intent value of a group label: ``promise_to_pay:weekday`` -> ``promise_to_pay``."""
    return label.split(":", 1)[0]


def phrase_groups(locale: str, expect: str | None) -> dict[str, tuple[str, ...]] | None:
    """The expected phrases after a prompt of kind ``expect``, grouped by the intent they express.

    Keys are :class:`bot.domain.Intent` values (``other`` for digits),
    optionally followed by ``:`` and a sub-group name when one intent's
    phrases are split into several smaller grammars (Korean dates:
    ``promise_to_pay:weekday``).  None for ``expect=None`` or a language
    without tables.  Raises ValueError for an unknown ``expect``.
    """
    if expect is None:
        return None
    if expect not in EXPECTS:
        raise ValueError(f"unknown expect {expect!r}; use one of {', '.join(EXPECTS)} or None")
    tables = _BY_LANGUAGE.get(language_of(locale))
    if tables is None:
        return None
    return {intent: _dedupe(phrases) for intent, phrases in tables[expect].items()}


def filler_for(locale: str) -> tuple[str, ...] | None:
    """The garbage model's words for ``locale`` (None: no garbage decode, acceptance rests on confidence)."""
    return _FILLERS.get(language_of(locale))


def grammar_for(locale: str, expect: str | None) -> list[str] | None:
    """The phrases expected after a prompt of kind ``expect`` in ``locale`` (all groups); None: free recognition.

    ``expect`` is one of :data:`EXPECTS` or None.  A language without tables
    (anything but Korean, English and Chinese) gets None.  Raises ValueError
    for an unknown ``expect``.
    """
    groups = phrase_groups(locale, expect)
    if groups is None:
        return None
    return list(_dedupe(phrase for phrases in groups.values() for phrase in phrases))
