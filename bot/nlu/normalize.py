"""Text normalisation shared by the keyword, rule and date layers.

Every later layer sees one canonical form, so that the rule tables can be
written once in lower case ASCII/CJK without caring about full-width letters,
curly apostrophes, emoji, contractions or the commonest typos:

1. NFKC (full-width ``ＳＴＯＰ``/``１５号`` become ``STOP``/``15号``) and casefold;
2. curly quotes become ``'``; emoji and other symbols become spaces (their
   presence is remembered: a thumbs-up can answer a yes/no question);
3. English contractions are expanded (``can't`` -> ``can not``, ``I'll`` ->
   ``i will``), salary phrases (``get paid``) become the token ``payday`` so
   they are never read as "I paid";
4. known misspellings and, for a curated vocabulary of long words, anything
   within a small edit distance, are corrected (``alredy payed`` -> ``already
   paid``, ``wednsday`` -> ``wednesday``).  Short words (``stop``) are never
   corrected fuzzily: a near-miss must not become an opt-out;
5. spaces between CJK words are removed (speech recognisers insert them);
6. Chinese numerals before a date or counting suffix become digits
   (``十五号`` -> ``15号``, ``三天后`` -> ``3天后``), and so do Korean ones
   before a date unit (``십오 일에`` -> ``15일에``, ``십이월`` -> ``12월``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Normalized", "cn_number", "keyword_key", "ko_number", "normalize", "osa_distance"]

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "`": "'", "\u00b4": "'"})
# Spanish (and other Latin) accents folded: "pagué" and "pague", "número" and "numero" are typed alike
_ACCENTS = str.maketrans("áàâäéèêëíìîïóòôöúùûüñç", "aaaaeeeeiiiioooouuuunc")
_SYMBOL_CATEGORIES = frozenset({"So", "Sk", "Cs", "Co", "Cf", "Cn"})
_YES_EMOJI = frozenset("👍👌✅✔🙆☑")
_NO_EMOJI = frozenset("👎❌✖🙅⛔")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Normalized:
    """The canonical forms of one message."""

    text: str  # normalised text the rules run on
    bare: str  # NFKC + casefold, emoji removed, trimmed: what keywords compare against
    corrected: bool  # a typo correction changed the text (lowers confidence)
    emoji_yes: bool  # contained a thumbs-up-like emoji
    emoji_no: bool  # contained a thumbs-down-like emoji
    had_symbols: bool  # contained emoji or other symbols


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _strip_symbols(text: str) -> tuple[str, bool]:
    """Emoji and other symbols become spaces; ASCII is left alone (it has no emoji)."""
    had = False

    def replace(match: re.Match[str]) -> str:
        nonlocal had
        ch = match.group(0)
        if unicodedata.category(ch) in _SYMBOL_CATEGORIES or ch in "\ufe0f\ufe0e\u20e3":
            had = True
            return " "
        return ch

    return _NON_ASCII.sub(replace, text), had


# --- English contractions and salary phrases -------------------------------

def _compile(
    rules: tuple[tuple[str, str, str], ...],
) -> tuple[tuple[str, re.Pattern[str], str], ...]:
    """(trigger, pattern, replacement): a pattern runs only when its literal trigger is in the text."""
    return tuple((trigger, re.compile(pattern), repl) for trigger, pattern, repl in rules)


_CONTRACTIONS = _compile((
    ("won't", r"\bwon't\b", "will not"),
    ("can't", r"\bcan't\b", "can not"),
    ("ain't", r"\bain't\b", "is not"),
    ("shan't", r"\bshan't\b", "shall not"),
    ("n't", r"n't\b", " not"),
    ("'ll", r"'ll\b", " will"),
    ("'ve", r"'ve\b", " have"),
    ("'re", r"'re\b", " are"),
    ("i'm", r"\bi'm\b", "i am"),
    ("'s", r"\b(it|that|what|who|he|she|there|here)'s\b", r"\1 is"),
    ("i'd", r"\bi'd\b", "i would"),
    ("cannot", r"\bcannot\b", "can not"),
    ("nt", r"\b(do|does|did|is|are|was|were|have|has|had|could|would|should|must|need)nt\b", r"\1 not"),
    ("im", r"\bim\b", "i am"),
    ("ive", r"\bive\b", "i have"),
    ("ts", r"\b(that|what)s\b", r"\1 is"),
    ("os", r"\bwhos\b", "who is"),
    ("theres", r"\btheres\b", "there is"),
    ("its ", r"\bits (?=(?:already |been |all |not |just )?"
     r"(?:paid|done|settled|wrong|not|been|a |the |ok|fine|mine|me|him|her)\b)", "it is "),
    ("ill ", r"\bill (?=(?:pay|send|make|have|get|do|try|be|transfer|wire|deposit|call|settle|take|check|"
     r"text|give)\b)", "i will "),
    ("youre", r"\byoure\b", "you are"),
    ("paid", r"\b(get|gets|getting|got|be|being) paid\b", "payday"),
    ("paid", r"\b(i|we) (?:was|were|am|are) paid\b", r"\1 payday"),
    ("day", r"\bpay ?day\b", "payday"),
    ("paycheck", r"\bpaycheck\b", "payday"),
))

# Misspellings seen in real replies (whole tokens); a correction lowers confidence.
_TYPOS: dict[str, str] = {
    "payed": "paid", "piad": "paid", "paied": "paid",
    "alredy": "already", "allready": "already", "alrdy": "already", "alrady": "already", "alreddy": "already",
    "aready": "already", "tomorow": "tomorrow", "tmorrow": "tomorrow", "wensday": "wednesday",
    "wendsday": "wednesday", "pleas": "please", "numbr": "number", "nmber": "number", "paymnt": "payment",
    "unsubscibe": "unsubscribe", "unsubcribe": "unsubscribe", "unsuscribe": "unsubscribe",
}

# Text-speak and apostrophe-less spellings: deliberate, so no confidence penalty.
_INFORMAL: dict[str, str] = {
    "pd": "paid", "alr": "already",
    "tmrw": "tomorrow", "tmr": "tomorrow", "tmrow": "tomorrow", "tmro": "tomorrow", "tomoz": "tomorrow",
    "2moro": "tomorrow", "2morrow": "tomorrow", "2mrw": "tomorrow",
    "2day": "today", "tday": "today", "2nite": "tonight", "tonite": "tonight",
    "mon": "monday", "tue": "tuesday", "tues": "tuesday", "wed": "wednesday", "weds": "wednesday",
    "thu": "thursday", "thur": "thursday", "thurs": "thursday", "fri": "friday", "sat": "saturday",
    "sun": "sunday", "pls": "please", "plz": "please", "plse": "please", "plez": "please",
    "u": "you", "ur": "your", "txt": "text", "txts": "texts", "txting": "texting",
    "msg": "message", "msgs": "messages", "msging": "messaging",
    "b4": "before", "nxt": "next", "wk": "week", "wks": "weeks", "eom": "end of month",
    "pmt": "payment", "pymt": "payment", "amt": "amount", "acct": "account",
    "thx": "thanks", "ty": "thanks", "tks": "thanks", "num": "number",
    "hosp": "hospital", "asap": "soon", "cuz": "because", "bc": "because",
    "gonna": "going to", "wanna": "want to", "gotta": "got to", "lemme": "let me", "gimme": "give me",
    "dnt": "do not", "dont": "do not", "didnt": "did not", "cant": "can not", "wont": "will not",
    "isnt": "is not", "wasnt": "was not", "doesnt": "does not", "havent": "have not", "hasnt": "has not",
    "couldnt": "could not", "wouldnt": "would not", "shouldnt": "should not", "aint": "is not",
}

# Long, distinctive words worth correcting by edit distance.  Deliberately no
# short words and nothing whose near neighbours are everyday words.
_FUZZY_VOCAB: tuple[str, ...] = (
    "already", "tomorrow", "yesterday", "tonight", "weekend",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "january", "february", "august", "september", "october", "november", "december",
    "payment", "payments", "unsubscribe", "hospital", "unemployed", "dispute", "afford",
    "installment", "installments", "extension", "transferred", "struggling", "hardship",
    "surgery", "recognize", "remove", "number", "please", "messages", "calling", "texting",
)
# Real words that sit one edit away from a vocabulary word.
_NOT_TYPOS = frozenset({
    "falling", "balling", "culling", "telling", "selling", "filling", "killing", "pulling", "rolling",
    "testing", "tasting", "nesting", "resting", "message", "member", "lumber", "pleased", "played",
    "fridays", "mondays", "sundays", "tuesdays", "saturdays", "thursdays", "wednesdays", "removed",
    "remote", "disputed", "disputes", "payments", "numbers", "struggle", "affords", "weekends",
})


def osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment (Damerau) edit distance, stopping above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        best = cur[0]
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            value = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                value = min(value, prev2[j - 2] + 1)
            cur[j] = value
            best = min(best, value)
        if best > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def _deletes(word: str, depth: int) -> set[str]:
    found = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def _allowed_distance(word: str) -> int:
    return 2 if len(word) >= 8 else 1


# Symmetric-delete index (the SymSpell idea): candidate lookups are a few set
# probes instead of an edit distance against the whole vocabulary.
_DELETE_INDEX: dict[str, set[str]] = {}
for _word in _FUZZY_VOCAB:
    for _variant in _deletes(_word, _allowed_distance(_word)):
        _DELETE_INDEX.setdefault(_variant, set()).add(_word)


@lru_cache(maxsize=8192)
def _correct_token(token: str) -> str:
    """The corrected spelling of one lower-case token (itself when unknown)."""
    if token in _INFORMAL:
        return _INFORMAL[token]
    if token in _TYPOS:
        return _TYPOS[token]
    if len(token) < 6 or token in _NOT_TYPOS or token in _FUZZY_VOCAB:
        return token
    candidates: set[str] = set()
    for variant in _deletes(token, 2 if len(token) >= 8 else 1):
        candidates |= _DELETE_INDEX.get(variant, set())
    best: tuple[int, str] | None = None
    for word in sorted(candidates):
        distance = osa_distance(token, word, _allowed_distance(word))
        if distance <= _allowed_distance(word) and (best is None or distance < best[0]):
            best = (distance, word)
    return best[1] if best else token


_WORD = re.compile(r"[a-z0-9]+")


def _correct_words(text: str) -> tuple[str, bool]:
    changed = False

    def fix(match: re.Match[str]) -> str:
        nonlocal changed
        token = match.group(0)
        new = _correct_token(token)
        if new != token and token not in _INFORMAL:
            changed = True
        return new

    return _WORD.sub(fix, text), changed


# --- Chinese numerals -------------------------------------------------------

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}


def cn_number(numeral: str) -> int | None:
    """``十五`` -> 15, ``二十`` -> 20, ``三十一`` -> 31, ``五千`` -> 5000, ``两万`` -> 20000."""
    if not numeral:
        return None
    total = 0
    section = 0
    digit: int | None = None
    for ch in numeral:
        if ch in _CN_DIGITS:
            if digit is not None:  # digit-by-digit form such as 二〇二六
                digit = digit * 10 + _CN_DIGITS[ch]
            else:
                digit = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            section += (1 if digit is None else digit) * _CN_UNITS[ch]
            digit = None
        elif ch == "万":
            total += (section + (digit or 0)) * 10000
            section, digit = 0, None
        else:
            return None
    return total + section + (digit or 0)


_CN_NUMERAL_RUN = re.compile(
    r"[零〇一二两三四五六七八九十百千万]+(?=号|日|天|月|个|周|星期|礼拜|块|元|钱|小时|年)"
)


def _cn_numerals_to_digits(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        value = cn_number(match.group(0))
        return match.group(0) if value is None else str(value)

    return _CN_NUMERAL_RUN.sub(repl, text)


# --- Korean (Sino-Korean) numerals ------------------------------------------------
# Speech recognisers write numbers as words: "십오 일에" (15th), "십이 월 십 일" (December 10),
# "삼 일 후" (in 3 days).  Only a numeral that starts a word and is followed by a date
# unit is converted; the single syllables 이 and 일 also need the unit written right after
# them ("이일에"), because "이 일" is usually "this matter".

_KO_DIGITS = {"일": 1, "이": 2, "삼": 3, "사": 4, "오": 5, "육": 6, "칠": 7, "팔": 8, "구": 9}
_KO_NUMERAL = re.compile(
    r"(?<![\uac00-\ud7a3])((?:[이삼] ?)?십(?: ?[일이삼사오육칠팔구])?|[일이삼사오육칠팔구])"
    r"(\s*)(?=일(?!요일)|월(?!요일)|주\s*(?:후|뒤))"
)
# "이 일에 낼게요" is the 2nd; "이 일에 대해" is "about this matter": a spaced 이/일 counts
# only with a payment verb after it
_KO_PAY_AFTER = re.compile(r"\s*일\s*(?:에|까지)?\s*(?:낼|내겠|갚|입금|납부|송금|보낼|보내)")
_KO_MONTH_NAMES = re.compile(r"(?<![\uac00-\ud7a3])(유|시)(\s*)월(?!요일)")


def ko_number(numeral: str) -> int | None:
    """``십오`` -> 15, ``이십일`` -> 21, ``삼`` -> 3 (Sino-Korean numerals up to 39)."""
    if not numeral:
        return None
    if "십" in numeral:
        tens_part, _, units_part = numeral.partition("십")
        tens = _KO_DIGITS.get(tens_part, 0) if tens_part else 1
        if tens_part and not tens:
            return None
        units = _KO_DIGITS.get(units_part, 0) if units_part else 0
        if units_part and not units:
            return None
        return tens * 10 + units
    return _KO_DIGITS.get(numeral)


def _ko_numerals_to_digits(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        numeral, gap = match.group(1), match.group(2)
        if numeral in ("이", "일") and gap and not _KO_PAY_AFTER.match(text, match.end(1)):
            return match.group(0)
        value = ko_number(numeral.replace(" ", ""))
        return match.group(0) if value is None else str(value)

    text = _KO_MONTH_NAMES.sub(lambda m: ("6" if m.group(1) == "유" else "10") + "월", text)
    return _KO_NUMERAL.sub(repl, text)


_TRIM = re.compile(r"^[\W_]+|[\W_]+$")
_CJK = "\u4e00-\u9fff\uac00-\ud7a3"
_CJK_GAP = re.compile(rf"(?<=[{_CJK}0-9])\s+(?=[{_CJK}])|(?<=[{_CJK}])\s+(?=[0-9])")


def keyword_key(bare: str) -> str:
    """The form carrier keywords are compared in: ``" Opt-Out! "`` -> ``optout``."""
    return re.sub(r"[\s\-_.]+", "", bare)


def normalize(raw: str) -> Normalized:
    text = unicodedata.normalize("NFKC", raw).translate(_QUOTES).casefold().translate(_ACCENTS)
    emoji_yes = not _YES_EMOJI.isdisjoint(text)
    emoji_no = not _NO_EMOJI.isdisjoint(text)
    text, had_symbols = _strip_symbols(text)
    text = _SPACES.sub(" ", text).strip()
    bare = _TRIM.sub("", text)
    if re.search(r"[a-z]", text):
        for trigger, pattern, repl in _CONTRACTIONS:
            if trigger in text:
                text = pattern.sub(repl, text)
        text, corrected = _correct_words(text)
        # a correction may itself expand (dont -> do not, eom -> end of month)
        text = _SPACES.sub(" ", text).strip()
    else:
        corrected = False
    if re.search(r"[\uac00-\ud7a3]", text):
        text = _ko_numerals_to_digits(text)
    # Speech recognisers (and some people) put spaces between CJK words:
    # "我 明天 还", "돈 이 없어요".  The CJK rules are written without them.
    text = _CJK_GAP.sub("", text)
    if re.search(r"[\u4e00-\u9fff]", text):
        text = _cn_numerals_to_digits(text)
    return Normalized(
        text=text, bare=bare, corrected=corrected, emoji_yes=emoji_yes, emoji_no=emoji_no, had_symbols=had_symbols
    )
