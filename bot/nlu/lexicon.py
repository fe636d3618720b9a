"""The keyword lists and rule tables the classifier runs (docs/nlu.md).

Everything a maintainer extends lives here, as data: add a keyword to a set,
or a :class:`Rule` to a language's table, then add rows to
``tests/data/replies.tsv`` proving it.  Patterns run on the normalised text of
:mod:`bot.nlu.normalize` (lower case, ``can't`` already ``can not``, Chinese
numerals already digits), so they are written in that form.

Rule names are ``<language>.<intent>.<what>``; the name of the rule that
decided is returned as ``Interpretation.matched`` and shown in the console, so
it must never contain anything copied from a reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.domain import Channel, Intent

__all__ = [
    "ACKS",
    "EN_RULES",
    "ES_RULES",
    "HELP_KEYWORDS",
    "KO_RULES",
    "NO_PHRASES",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "Rule",
    "YES_PHRASES",
    "ZH_LOCALE_OPT_OUT_KEYWORDS",
    "ZH_REPAY",
    "ZH_RULES",
]

# --- whole-message keywords (compared after bot.nlu.normalize.keyword_key) ----

# CTIA carrier keywords plus "opt out"/"stop all" (spaces and hyphens are
# removed before comparing), and the Chinese and Korean unsubscribe words,
# which cannot mean anything else in any locale.
OPT_OUT_KEYWORDS: dict[str, str] = {
    "stop": "STOP", "stopall": "STOPALL", "end": "END", "cancel": "CANCEL", "unsubscribe": "UNSUBSCRIBE",
    "quit": "QUIT", "revoke": "REVOKE", "optout": "OPTOUT", "退订": "退订", "수신거부": "수신거부", "그만": "그만",
    # Spanish (CTIA: carriers and short-code programmes honour these as STOP in every locale)
    "alto": "ALTO", "parar": "PARAR", "cancelar": "CANCELAR", "detener": "DETENER",
}
# Customary in China ("回T退订"): one or two Latin letters that mean "no" or
# nothing at all elsewhere, so honoured only for zh locales and on SMS.
ZH_LOCALE_OPT_OUT_KEYWORDS: dict[str, str] = {"t": "T", "td": "TD", "n": "N"}
# Opt-in keywords are SMS-only: in a voice yes/no prompt "yes" is an answer.
OPT_IN_KEYWORDS: dict[str, str] = {"start": "START", "unstop": "UNSTOP", "yes": "YES"}
HELP_KEYWORDS: dict[str, str] = {"help": "HELP", "info": "INFO", "帮助": "帮助", "도움말": "도움말", "ayuda": "AYUDA"}

# Whole-message answers to a yes/no question (voice and yes_no contexts);
# compared against the normalised text with punctuation removed.
YES_PHRASES: frozenset[str] = frozenset({
    "yes", "yeah", "yep", "yup", "yea", "ya", "yah", "y", "sure", "correct", "right", "that is right",
    "that is correct", "that is me", "this is me", "it is me", "speaking", "ok", "okay", "of course",
    "absolutely", "definitely", "affirmative", "uh huh", "mhm", "i do", "i am", "yes please", "yes it is",
    "yes i am", "yes that is me", "yes speaking", "yes this is me", "sure thing", "yes correct", "yes sir",
    "yes ma'am", "that is right yes", "si", "claro", "correcto", "asi es", "si soy yo", "soy yo",
    "是", "是的", "对", "对的", "对啊", "没错", "嗯", "嗯嗯", "好", "好的", "可以", "行", "是我", "我是", "本人",
    "是本人", "确认", "同意", "好吧", "是啊", "对对",
    "네", "예", "응", "어", "맞아요", "맞습니다", "그래요", "좋아요", "알겠습니다", "네맞아요", "맞아", "네네",
    "그렇습니다", "본인입니다", "접니다", "네접니다", "네본인입니다", "네맞습니다",
    # speech recognisers write a two-part answer as one run of Hangul once the spaces are gone
    "네그래요", "네그렇습니다", "네알겠습니다", "네좋아요", "예맞아요", "예맞습니다", "예그래요", "예본인입니다",
    "예접니다", "네맞아", "맞아요네", "네네네",
})
NO_PHRASES: frozenset[str] = frozenset({
    "no", "nope", "nah", "no thanks", "no thank you", "not really", "negative", "not now", "no it is not",
    "no i am not", "no way", "n", "not me", "no gracias", "para nada", "i do not", "no sir", "no ma'am", "nope not me",
    "不是", "不对", "没有", "不", "不要", "不行", "不可以", "不用", "没", "否", "不需要", "不同意", "不是我",
    "아니요", "아니오", "아뇨", "아니", "아니에요", "아닙니다", "싫어요", "안돼요", "아니요아닙니다",
    "아닌데요", "아닌데", "아니거든요", "아니요아니에요", "아니요아닌데요", "아뇨아닙니다",
    "아님니다",  # 아닙니다 as it is pronounced, and as a recogniser may spell it
    "틀려요", "틀렸어요", "틀립니다", "아니요틀려요", "아니틀려요",  # "that's wrong": a no to a read-back
})
# Greetings and acknowledgements: recognised so that "other" is said with confidence.
ACKS: frozenset[str] = frozenset({
    "hi", "hello", "hey", "hiya", "good morning", "good afternoon", "good evening", "thanks", "thank you",
    "thank you so much", "ok thanks", "ok thank you", "ok", "okay", "k", "kk", "got it", "noted", "cool",
    "alright", "all right", "fine", "ok cool", "hello there", "hi there", "hey there", "thanks a lot",
    "hola", "gracias", "muchas gracias", "buenos dias", "buenas tardes", "buenas noches", "vale", "bueno",
    "de acuerdo", "entendido", "ok gracias", "si gracias",
    "你好", "您好", "谢谢", "收到", "知道了", "好的", "嗯", "哦", "好", "好的谢谢", "谢谢你", "明白",
    "안녕하세요", "감사합니다", "알겠어요", "고맙습니다", "네감사합니다",
})


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern that suggests one intent.

    ``negatable``: skip a match that a negation just before it turns around
    ("I have *not* paid").  ``media``: an opt-out whose scope is read from the
    medium words in and just after the match ("stop *calling*" -> voice).
    """

    name: str
    intent: Intent
    pattern: re.Pattern[str]
    confidence: float = 0.9
    scope: Channel | None = None
    negatable: bool = True
    media: bool = False
    all_channels: bool = False
    unless_before: re.Pattern[str] | None = None  # skip a match that this pattern precedes in its clause

    @property
    def language(self) -> str:
        """``en``, ``es``, ``zh`` or ``ko``: the first part of the name, which picks the negation test."""
        return self.name.split(".", 1)[0]


def _rule(name: str, intent: Intent, pattern: str, confidence: float = 0.9, **options: object) -> Rule:
    return Rule(name, intent, re.compile(pattern), confidence, **options)  # type: ignore[arg-type]


I = Intent  # noqa: E741 - short alias keeps the tables readable
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"

# --- English ------------------------------------------------------------------

_MEDIUM = (
    r"(?:texting|texts?|messaging|messages?|sms|calling|calls?|phoning|ringing|emailing|e-?mails?|"
    r"contacting|sending|harassing|bothering|spamming|stalking|hounding|pestering|reminders?|notifications?|"
    r"robocalls?)"
)

EN_RULES: tuple[Rule, ...] = (
    # opt-out: an addressed request to stop contact, never a bare "stop" inside a sentence
    _rule("en.opt_out.stop_contact", I.OPT_OUT,
          rf"(?<!not )(?<!never )\b(?:stop|quit|cease|end)\s+(?:all\s+|the\s+|these\s+|your\s+)*{_MEDIUM}\b",
          0.95, negatable=False, media=True),
    _rule("en.opt_out.do_not_contact", I.OPT_OUT,
          r"\b(?:do not|never|please do not)\s+(?:ever\s+)?(?:text|message|sms|call|phone|ring|e-?mail|contact|bother|"
          r"harass)(?:\s+(?:me|us|this number|my number|my phone|here)\b|(?=\s*(?:$|[.!,])))",
          0.95, negatable=False, media=True),
    _rule("en.opt_out.remove_me", I.OPT_OUT,
          r"\b(?:remove|delete|take|erase|drop)\s+(?:me|my (?:number|phone(?: number)?|email|info|details|contact))"
          r"(?:\s+(?:from|off)\b|\s*(?:$|[.!,]))|\blose my number\b",
          0.95, negatable=False, all_channels=True),
    _rule("en.opt_out.unsubscribe", I.OPT_OUT,
          r"\bunsubscribe\b|\bopt(?:\s|-)?(?:me\s+)?out\b|\bopting out\b", 0.95, negatable=False),
    _rule("en.opt_out.do_not_want", I.OPT_OUT,
          r"\b(?:do not|never) want (?:to be (?:contacted|called|texted|messaged|e-?mailed)|"
          r"(?:any ?more|any|your|these|more) (?:texts|messages|calls|e-?mails|contact))\b",
          0.9, negatable=False, media=True),
    _rule("en.opt_out.leave_alone", I.OPT_OUT, r"\bleave me alone\b", 0.9, negatable=False, all_channels=True),
    _rule("en.opt_out.no_more", I.OPT_OUT,
          r"\bno more (?:texts?|messages?|calls?|e-?mails?|contact|reminders?|notifications?)\b",
          0.9, negatable=False, media=True),
    _rule("en.opt_in.resume", I.OPT_IN,
          r"\b(?:start|resume|restart)\s+(?:texting|sending|messaging)\b|\bopt (?:me )?(?:back )?in\b|"
          r"\bresubscribe\b|\bsubscribe me\b", 0.8),
    # wrong number
    _rule("en.wrong_number.wrong", I.WRONG_NUMBER,
          r"\bwrong (?:number|person|guy|phone|contact|people|lady|man)\b|\bwrong #|"
          r"\b(?:you have|you got|got|have) the wrong\b", 0.95, negatable=False),
    _rule("en.wrong_number.do_not_know", I.WRONG_NUMBER,
          r"\b(?:i )?do not know (?:any(?:one|body)?\b|an? \w+|this (?:person|guy|man|woman|lady|name)\b|"
          r"that (?:person|guy|man|woman|lady|name)\b|who (?:that|this) (?:is|person)\b|who you are "
          r"(?:talking|looking|asking) (?:about|for)\b|(?:him|her|them)\b|who that is\b)", 0.9, negatable=False),
    _rule("en.wrong_number.no_such_person", I.WRONG_NUMBER,
          r"\bno (?:one|body) (?:here |lives here |by that name )?(?:by|named|called|with) (?:that|this)\b|"
          r"\b(?:no one|nobody) (?:here |at this number )?(?:by|named|called)\b|"
          r"\bno (?:one|body) (?:by that name|lives here|with that name)\b|\bnobody (?:by that name|lives here)\b",
          0.9, negatable=False),
    _rule("en.wrong_number.not_here", I.WRONG_NUMBER,
          r"\bthere is no (?!money|job|work|way|payment|need|problem|reason|time|one to)(?:\w+ ){1,2}(?:here|at this "
          r"(?:number|phone)|on this (?:number|phone))\b|\bno (?!one\b|body\b|more\b)\w+ (?:at|on) this (?:number|phone)\b|"
          r"\bno such (?:person|people|name)\b|\b(?:no one|nobody|noone)(?: \w+)? (?:lives|living) here\b|"
          r"\b(?:he|she|they) (?:is|are|does|do) not (?:live |stay )?here(?! (?:right now|now|at the moment|today|"
          r"yet))\b|\bnever heard of (?:him|her|them|this person|that person|that name|this name|an? \w+|any \w+)\b|"
          r"\b(?:this|that|it) is not \w+'?s? (?:number|phone|cell)\b|\bthis (?:number|phone) (?:belongs to me|is mine)\b|"
          r"\b(?:it is|this is) my (?:number|phone) now\b|\bmy number now\b", 0.9, negatable=False),
    _rule("en.wrong_number.not_that_person", I.WRONG_NUMBER,
          r"\b(?:this|it|that) is not (?:his|her|their|the right|the) (?:number|phone|cell)\b|"
          r"\b(?:i am|this is) not (?:him|her|them|the person you (?:want|are looking for|are asking for)|that "
          r"person)\b|\bnot (?:his|her|their) (?:number|phone)\b|\b(?:he|she|they) (?:does not|do not|no longer) "
          r"(?:live|work|stay|use this)\b|\bno longer (?:has|have|uses?) this (?:number|phone)\b|"
          r"\b(?:this is a|my) new number\b|\bjust got this number\b|\bgot this number (?:recently|last)\b|"
          r"\b(?:does not|do not|no longer) (?:have|has|use|uses) this (?:number|phone)\b",
          0.9, negatable=False),
    # dispute
    _rule("en.dispute.not_mine", I.DISPUTE,
          r"\bnot my (?:debt|loan|account|bill|balance|charge|payment)\b", 0.9, negatable=False),
    _rule("en.dispute.do_not_owe", I.DISPUTE,
          r"\b(?:i|we) (?:do not|never|did not) owe\b|\bowe (?:you )?(?:nothing|no money)\b|\bi owe you nothing\b",
          0.9, negatable=False),
    _rule("en.dispute.never_borrowed", I.DISPUTE,
          r"\b(?:i|we) (?:never|did not|have never|have not ever) (?:took|take|taken|borrowed|borrow|applied|apply|"
          r"signed|sign|opened|open|had|got|get)\b(?: \w+){0,3} (?:loan|money|account|credit|this|that|anything)\b",
          0.9, negatable=False),
    _rule("en.dispute.wrong_amount", I.DISPUTE,
          r"\b(?:wrong|incorrect|inaccurate) (?:amount|balance|charge|total|figure|sum|bill|fee|interest)s?\b|"
          r"\b(?:amount|balance|total|charge|bill|fee) (?:is|was|seems|looks) (?:wrong|incorrect|off|not right|"
          r"too high)\b|\bcharged (?:me )?twice\b|\bdouble charged\b|\bover ?charged\b",
          0.9, negatable=False),
    _rule("en.dispute.dispute", I.DISPUTE, r"\bdisput(?:e|es|ed|ing)\b", 0.9),
    _rule("en.dispute.fraud", I.DISPUTE,
          r"\b(?:scam|scams|scammer|scammers|scamming|fraud|fraudulent|identity theft|stolen identity)\b", 0.8),
    _rule("en.dispute.do_not_recognise", I.DISPUTE,
          r"\b(?:do not|never) recogni[sz]e (?:this|that|the|it|any)\b|\bvalidation (?:notice|letter)\b|"
          r"\bverify (?:this|the) debt\b|\bprove (?:it|that i owe)\b", 0.85, negatable=False),
    # paid
    _rule("en.paid.already", I.PAID,
          r"\balready (?:paid|sent|made|done|did|settled|transferred|took care|taken care|cleared|mailed|handled|"
          r"deposited|wired|zelled|venmoed)\b|"
          r"\b(?:paid|sent|made|settled) (?:it |this |that |the payment |the money |the bill |you )?already\b",
          0.95),
    _rule("en.paid.i_paid", I.PAID,
          r"\b(?:i|we|my (?:wife|husband|son|daughter|mom|dad|mother|father|partner))(?: have| had| just| already|"
          r" actually| finally)* (?:paid|made (?:a|the|my|that|this) payment|sent (?:the |you |it|a |my |over )?"
          r"(?:money|payment|funds|transfer|check|cheque|it)|transferred|settled|cleared|wired|deposited|"
          r"mailed (?:the |a |my )?(?:check|cheque|payment))\b", 0.9),
    _rule("en.paid.it_is_paid", I.PAID,
          r"\b(?:it|this|that|bill|balance|loan|account|debt|everything)(?: is| was| has| have| got| been)+"
          r"(?: already| just| all)? (?:paid|settled|cleared|taken care of)\b", 0.9),
    # past-tense payments by any channel: "paid via zelle", "sent it monday", "made the payment online"
    _rule("en.paid.past_channel", I.PAID,
          r"\bpaid (?:it |this |that |them |you |the \w+ )?(?:via|through|thru|with|using|at|over|online|in (?:the|your)"
          r"|by (?:bank|card|check|cheque|phone|transfer|zelle|venmo|cash)|on (?:the|your) (?:app|website|site|portal|"
          r"phone))\b|\b(?:zelled|venmoed|zelle'd|venmo'd|cashapped)\b|\bmade (?:a|the|my|this|that) payment\b|"
          r"\b(?:did|made|sent|completed) (?:a|the) (?:bank |wire |online )?(?:transfer|deposit)\b|"
          r"\btook care of (?:it|this|that|the (?:payment|bill|balance))\b|"
          r"\b(?:sent|transferred|wired|deposited|paid) (?:you |over |in )?[$£€]\s?\d|"
          r"\b(?:money|payment|transfer|it|check|cheque) (?:went (?:out|through)|has (?:gone through|cleared)|"
          r"cleared)\b|\b(?:dropped off|mailed|sent|brought) (?:you |in )?(?:a |the |my )?(?:check|cheque|money order)\b",
          0.9),
    _rule("en.paid.sent_no_subject", I.PAID,
          r"(?:^|[.,!;] ?)(?:just |already )?(?:sent|transferred|deposited|wired|mailed|paid) (?:it|the (?:money|"
          r"payment|funds|balance|full amount|rest)|you (?:the|my|\$)|over|everything)\b", 0.85),
    _rule("en.paid.payment_made", I.PAID,
          r"\bpayment (?:is |was |has been |have been )?(?:already )?(?:sent|made|done|complete|completed|submitted|"
          r"processed|went through|posted)\b|\bpaid (?:in full|off|yesterday|today|last|this morning|earlier|it|"
          r"that|this|the bill|the balance|on)\b|\bmoney (?:is |was |has been )?sent\b|\bcheck is in the mail\b|"
          r"\bjust paid\b", 0.9),
    _rule("en.paid.one_word", I.PAID, r"^(?:all |already |just )?(?:paid|sent|done)(?: already| now| it)?\W*$", 0.7),
    _rule("en.paid.did_you_get", I.PAID,
          r"\b(?:did|have) you (?:get|got|receive|received|see) (?:my|the) (?:payment|money|transfer|check)\b", 0.7),
    # promise to pay (a date, when present, is read separately)
    _rule("en.promise_to_pay.will_pay", I.PROMISE_TO_PAY,
          r"\b(?:i|we)(?: will| shall| can| could| am going to| going to| plan to| hope to| expect to| should|"
          r" would| want to| intend to| am able to| will be able to| be able to| will try to| try to| will try and|"
          r" am planning to| promise to| need to| must| will definitely| will surely| will def)+ (?:pay|send|"
          r"make (?:a |the |my )?payment|transfer|wire|deposit|settle|clear|get (?:it|you|the money|the payment)|"
          r"have (?:it|the money|the payment|the rest)|take care of (?:it|this|that))\b", 0.85),
    _rule("en.promise_to_pay.can_i_pay", I.PROMISE_TO_PAY,
          r"\b(?:can|could|may) (?:i|we) (?:pay|send|make (?:a |the )?payment)\b", 0.8),
    _rule("en.promise_to_pay.will_pay_no_subject", I.PROMISE_TO_PAY,
          r"(?<!not )\b(?:will|going to|gonna) (?:pay|send (?:it|the money|payment)|make (?:a |the )?payment)\b|"
          r"\bpayment (?:will be|is coming|coming|on the way|is on the way)\b|\blet me pay\b", 0.8),
    _rule("en.promise_to_pay.pay_when", I.PROMISE_TO_PAY,
          rf"\bpay(?:ing)?(?: you| it| the rest| in full| back| the balance| the bill| this| that| off)?"
          rf" (?:on |by |before |this |next |the end|end of|in \d|within )?(?:tomorrow|today|tonight|{_WEEKDAY}|"
          rf"the \d|\d{{1,2}}(?:st|nd|rd|th)|\d{{1,2}}/|week|month|payday)\b", 0.85),
    _rule("en.promise_to_pay.can_do_amount", I.PROMISE_TO_PAY,
          r"\b(?:i|we) (?:can|could|will|am going to) (?:do|manage|send|pay|make) (?:you )?(?:[$£€]|\d)", 0.8),
    _rule("en.promise_to_pay.not_until", I.PROMISE_TO_PAY,
          r"\b(?:can not|could not|will not be able to|unable to|not able to) (?:pay|make (?:a |the )?payment)"
          r"(?: \w+){0,3} (?:until|till|til|before)\b", 0.75, negatable=False),
    _rule("en.promise_to_pay.will_elliptic", I.PROMISE_TO_PAY,
          rf"\b(?:i|we) (?:will|can|shall)(?: do it| do that| have it)?(?: by| on)? (?=tomorrow|today|tonight|"
          rf"{_WEEKDAY}|next|this|the \d|\d|end of)", 0.7),
    _rule("en.promise_to_pay.payday", I.PROMISE_TO_PAY, r"\bpayday\b", 0.6),
    # hardship
    _rule("en.hardship.job", I.HARDSHIP,
          r"\b(?:lost|lose|losing) (?:my|his|her|our) (?:job|work|income|employment)\b|\blaid off\b|"
          r"\bgot (?:fired|let go|sacked)\b|\b(?:unemployed|jobless|redundant|furloughed)\b|\bout of work\b|"
          r"\bno (?:job|work|income)\b|\bbetween jobs\b|\bhours (?:got |were |have been )?cut\b", 0.9,
          negatable=False),
    _rule("en.hardship.cannot_pay", I.HARDSHIP,
          r"\b(?:can not|could not|unable to|not able to|will not be able to|am not able to|no way i can) "
          r"(?:pay|afford|make (?:the|this|a|my) payments?|make it|make payments)\b|\b(?:can not|could not) afford\b",
          0.85, negatable=False),
    _rule("en.hardship.money", I.HARDSHIP,
          r"\b(?:no|not enough|do not have(?: the| any| enough)?|short on|low on|tight on) (?:money|cash|funds)\b|"
          r"\b(?:broke|struggling|hard times?|tough times?|difficult times?|hardship|financial(?:ly)? "
          r"(?:difficult(?:y|ies)|trouble|problems?|struggling)|behind on (?:bills|rent|everything))\b|"
          r"\bmoney is (?:tight|short)\b|\bcan not make ends meet\b|\bbankrupt(?:cy)?\b", 0.85),
    _rule("en.hardship.health", I.HARDSHIP,
          r"\b(?:in|at|to|from) (?:the )?hospital\b|\bhospitali[sz]ed\b|\bsick(?! of| and tired)\b|"
          r"\b(?:ill|illness|surgery|cancer|"
          r"injured|injury|disability|disabled|covid|chemo|pregnant|maternity)\b|\bmedical (?:bills?|emergency|"
          r"leave|issues?|problems?)\b|\bcar accident\b", 0.85),
    _rule("en.hardship.life_event", I.HARDSHIP,
          r"\b(?:passed away|died|death in the family|funeral|divorce|divorced|evicted|eviction|homeless|"
          r"house fire|natural disaster)\b", 0.85, negatable=False),
    _rule("en.hardship.more_time", I.HARDSHIP,
          r"\b(?:need|needs|give me|get|want|ask for|request) (?:some |a little |a bit |an |a few )?(?:more )?"
          r"(?:time|extension|days)\b|\bpayment (?:plan|arrangement)\b|\b(?:installments?|instalments?)\b|"
          r"\blower (?:my |the )?payments?\b|\breduce (?:my |the )?payments?\b|\bdefer(?:ral|ment)?\b|"
          r"\bforbearance\b|\bpay less\b|\bsmaller payments?\b", 0.8),
    # callback request
    _rule("en.callback_request.call_me", I.CALLBACK_REQUEST,
          r"\bcall (?:me|us)(?: back)?\b|\bcall back\b|\b(?:give me|gimme) a (?:call|ring)\b|\bring me\b", 0.85),
    _rule("en.callback_request.someone_call", I.CALLBACK_REQUEST,
          r"\b(?:can|could|would|will|please have|have) (?:someone|somebody|you|an agent|a person|a human|"
          r"a representative|an operator|anyone) (?:please )?(?:call|phone|ring|contact) me\b", 0.9),
    _rule("en.callback_request.call_at", I.CALLBACK_REQUEST,
          r"\bplease (?:call|phone|ring)\b|\bcall (?:me )?(?:after|before|at|between|around|later|tomorrow|tonight|"
          r"in the|this)\b|\bbetter time to call\b", 0.85),
    _rule("en.callback_request.contact_me_later", I.CALLBACK_REQUEST,
          r"\b(?:text|message|e-?mail|contact|reach) me (?:after|before|at|between|around|later|tomorrow|tonight|"
          r"in the|next)\b", 0.7),
    _rule("en.callback_request.talk_to_person", I.CALLBACK_REQUEST,
          r"\b(?:talk|speak|chat) (?:to|with) (?:someone|somebody|a (?:person|human|real person|live person|"
          r"representative|rep|manager|supervisor|agent)|an (?:agent|operator)|you|your (?:manager|supervisor))\b|"
          r"\b(?:can|could) we talk\b|\breal person\b|\blive agent\b", 0.85),
    _rule("en.callback_request.busy_now", I.CALLBACK_REQUEST,
          r"\b(?:i am|i'm) (?:busy|at work|driving|in a meeting)\b|\bcan not talk(?: right)?(?: now)?\b|"
          r"\b(?:talk|speak) later\b", 0.6, negatable=False),
    # who is writing, and why (answered with the lender's name; the debt only to a verified number)
    _rule("en.identity_question.what_is_this", I.IDENTITY_QUESTION,
          r"\bwhat (?:is|was) (?:this|that|it)(?: about| for| regarding| re| in regards to)?\b|\bwhat (?:loan|debt|"
          r"account|bill|company|business)\b|\bwhat do you want\b|\bwhat are you talking about\b|\bwhy (?:are|do) you "
          r"(?:keep )?(?:texting|calling|messaging|contacting)\b|\bwhat company (?:is this|are you|do you)\b|"
          r"\bis this (?:legit|real|a real company|legitimate)\b", 0.8),
    _rule("en.identity_question.who_is_this", I.IDENTITY_QUESTION,
          r"\bwho (?:is|are) (?:this|you|these people|you guys|you people)\b|\bwho is (?:texting|calling|messaging)\b|"
          r"\bwho (?:this|dis)\b|\bwho gave you (?:my|this) number\b|\bhow did you get (?:my|this) number\b", 0.8),
    # how much is owed (where to see it; the amount only to a verified number)
    _rule("en.balance_inquiry.how_much", I.BALANCE_INQUIRY,
          r"\bhow much\b(?! (?:time|longer|interest rate))|\b(?:my|the|remaining|current|outstanding|total|loan) "
          r"balance\b|\bpay ?off (?:amount|balance|figure|quote)\b|\bpayoff\b|\bwhat (?:do|did) i (?:still )?owe\b|"
          r"\b(?:the )?(?:amount|total|sum) (?:i|we) (?:still )?owe\b|\bwhat is (?:the|my) (?:total|amount due|"
          r"amount owed)\b", 0.8),
    # help
    _rule("en.help.how_to_pay", I.HELP,
          r"\bhow (?:do|can|should) i (?:pay|make (?:a|the) payment|reach you|contact you)\b|"
          r"\bwhere (?:do|can|should) i (?:pay|send)\b|\b(?:can|may|could) i pay (?:by|with|using|online|via)\b|"
          r"\b(?:payment )?link\b|\bwhen is (?:it|my payment|the payment) due\b|\bdue date\b|"
          r"\bmore (?:info|information|details)\b|\bi do not understand\b|\bconfused\b|"
          r"\b(?:help me|need help|can you help|could you help|please help|help please)\b", 0.7),
)

# --- Chinese ------------------------------------------------------------------

_ZH_NEG = r"(?:不要|别|请勿|勿|不许|不准|禁止|不想)"
# 还 means both "repay" and "still"; only the repay reading counts
ZH_REPAY = r"(?:还款|还钱|还上|还清|还给|还(?![在是有没不要得会能可以想很挺行好个差欠剩]))"

# "明天还了" / "会还了": a time ahead or a modal before 还了 makes it a promise, not a payment
_ZH_FUTURE = r"明天|明日|后天|下周|下个|下星期|周[一二三四五六日天]|星期|礼拜|月底|月末|\d+[号日]|会|要|将|准备|打算|马上|等|过几天|过两天|尽快"

ZH_RULES: tuple[Rule, ...] = (
    _rule("zh.opt_out.unsubscribe", I.OPT_OUT, r"退订|取消订阅|拒收|退出短信|屏蔽", 0.95, negatable=False),
    _rule("zh.opt_out.stop_texting", I.OPT_OUT,
          rf"{_ZH_NEG}(?:再|在)?(?:给我)?(?:发|发送)(?:短信|信息|消息)?|停止(?:发送|发)|不要再?(?:给我)?发了", 0.95,
          scope=None, negatable=False, media=True),
    _rule("zh.opt_out.stop_calling", I.OPT_OUT,
          rf"{_ZH_NEG}(?:再|在)?(?:给我)?(?:打电话|打来|来电|打了|打我|打扰)|停止(?:打电话|来电|拨打)|"
          rf"{_ZH_NEG}(?:再|在)?打(?!错|款|钱)", 0.95, scope=None, negatable=False, media=True),
    _rule("zh.opt_out.do_not_want", I.OPT_OUT,
          r"不(?:想|要|愿意)再?(?:接到|收到|接)(?:你们的?)?(?:电话|短信|信息|消息)", 0.9, negatable=False, media=True),
    _rule("zh.opt_out.or_else", I.OPT_OUT,
          r"(?:再|还)(?:给我)?(?:打|发)(?:电话|短信|信息)?.{0,6}(?:报警|起诉|告你|投诉)", 0.8, negatable=False, media=True),
    _rule("zh.opt_out.stop_contact", I.OPT_OUT,
          rf"{_ZH_NEG}(?:再|在)?(?:来)?(?:联系|骚扰|烦)我?|删除我的(?:号码|信息)|从(?:你们的)?(?:名单|列表)(?:中|里)?(?:删除|移除)",
          0.9, negatable=False, all_channels=True),
    _rule("zh.wrong_number.dialled_wrong", I.WRONG_NUMBER,
          r"(?:打|发)错(?:了|人|号码|电话)?|错号|号码错了|找错人", 0.95, negatable=False),
    _rule("zh.wrong_number.not_that_person", I.WRONG_NUMBER,
          r"不是(?:他|她|他们|本人)的?(?:号码|电话|手机)|不是本人|我不是(?:他|她|本人|你要找的人|你们要找的人)|"
          r"没有这个人|没这个人|查无此人|没有(?:叫|姓)|没有这(?:样的|么个)人|(?:这个人|他|她)不在这|"
          r"(?:号码|号|手机|电话)(?:已经|现在|早就)?不是(?:他|她|他们|本人)的|"
          r"(?:他|她|他们)(?:已经|早就)?(?:不|没)(?:再)?(?:用|使用)这个(?:号码|号|手机|电话)|不认识(?!你)(?:他|她|这个人|此人|这人|你说的|什么)?|这是(?:我的)?新号|"
          r"号码(?:是)?新(?:办|换)的|号码.{0,4}(?:刚|新)(?:买|办|换|开)|新(?:换|办)的(?:号|手机)|(?:刚)?换(?:了)?号(?:码)?", 0.9, negatable=False),
    _rule("zh.dispute.not_mine", I.DISPUTE,
          r"不是我的(?:贷款|借款|账单?|欠款|债|钱|账户)|我(?:从来|从)?(?:没有|没)(?:借|贷|申请)过?(?:款|钱|贷款)?|"
          r"不是我借的|我不欠|没欠(?:你们)?(?:钱)?|我不认这", 0.9, negatable=False),
    _rule("zh.dispute.wrong_amount", I.DISPUTE,
          r"金额(?:不对|有误|错了|不正确|错误)|(?:数额|钱数|账|数目|利息)(?:不对|有误|错了)|多扣|扣多了|扣了两次|重复扣款",
          0.9, negatable=False),
    _rule("zh.dispute.complaint", I.DISPUTE, r"异议|争议|投诉|诈骗|骗子|骗人", 0.85, negatable=False),
    _rule("zh.paid.already", I.PAID,
          r"(?:已经?|早就?|刚刚?|刚才)(?:还款|还|付款|付|支付|转账|转|打款|缴|交|结清|还清)|"
          r"(?:还|付|转|交|缴|打|汇)(?:过|好)了|还清了|结清了|(?:钱|款)(?:已经?)?(?:打|转|汇)(?:过去|给你们)了|"
          r"(?:还款|支付|付款|转账)成功|我(?:已)?还了|已经?[^没不未，,。!！?？]{1,8}?(?:还|付|转|交|缴)(?:款|钱)?了|"
          r"(?:昨天|前天|上周|上个月|刚才|之前|早上|上午)(?:就)?(?:还|付|转|交)(?:款|钱)?了|还了(?:一部分|一些|部分|一半)",
          0.95),
    _rule("zh.paid.done", I.PAID,
          r"(?:(?:还|付|转|缴|汇)(?:款|钱|账|清)?(?:过去|过来|进去|给你们|给你)?|打(?:款|钱)(?:过去|给你们|给你)?|"
          r"打(?:过去|给你们|给你)|交(?:款|钱))了(?!吗|么|没|嘛|\?|？)|"
          r"已(?:付|还|转|缴|交|打款|支付)|(?:支付宝|微信|银行|网上|APP|app|手机|线上)(?:上)?(?:已经?)?(?:还|付|转|支付)",
          0.9, unless_before=re.compile(_ZH_FUTURE)),
    _rule("zh.paid.did_you_get", I.PAID, r"收到(?:我的)?(?:还款|钱|转账|付款|款)(?:了)?吗", 0.7, negatable=False),
    _rule("zh.promise_to_pay.will", I.PROMISE_TO_PAY,
          rf"(?:会|就|能|可以|准备|打算|争取|尽快|马上|一定|保证|肯定|想|要|先|再)(?:在)?(?:把钱)?(?:{ZH_REPAY}|付|转|交|缴|打款|凑钱)",
          0.85),
    _rule("zh.promise_to_pay.ends_with_repay", I.PROMISE_TO_PAY,
          rf"(?<![已经没未不])(?:{ZH_REPAY}|付款|付|转账|打款|缴费)(?:吧|啊|的|哈)?[。.!~]*$", 0.8),
    _rule("zh.promise_to_pay.soon", I.PROMISE_TO_PAY,
          r"等发工资|发工资(?:后|了|就)|有钱(?:了)?就还|过几天还|过两天还", 0.6),
    _rule("zh.hardship.hardship", I.HARDSHIP,
          r"失业|没(?:有)?工作|丢了工作|被(?:裁|辞|开除|解雇)|下岗|没(?:有)?钱|钱不够|还不起|还不上|付不起|交不起|"
          r"手头(?:很|有点|比较)?紧|困难|住院|生病|病了|医院|手术|去世|过世|离婚|周转不(?:开|过来)|资金紧张|宽限|延期|"
          r"分期|缓(?:几天|一下|缓)|晚几天|不一定能|不确定能|不知道能不能|可能还不(?:了|上)|经济(?:压力|困难|问题)|工资(?:没|还没)发|发不出工资|拖欠工资|破产|生意(?:不好|失败)",
          0.85, negatable=False),
    _rule("zh.callback_request.call_me", I.CALLBACK_REQUEST,
          r"回(?:个)?电话|回电|给我(?:打|回)(?:个)?电话|打(?:给)?我(?:的)?(?:电话|手机)|"
          r"(?:晚点|晚些|稍后|等会|等下|一会儿?|待会儿?|下午|晚上|上午|明天|改天)(?:再)?(?:打|联系)(?!款|钱)(?:给我|过来|来)?|"
          r"(?:请|麻烦)(?:打|致电)给我|转人工|人工(?:客服|服务)|找(?:个)?(?:人|客服)|(?:跟|和)(?:人|客服)(?:说|谈|沟通)|"
          r"请?联系我|打我电话", 0.85),
    _rule("zh.callback_request.busy", I.CALLBACK_REQUEST,
          r"(?:晚点|回头|改天|等会|待会)再说|(?:现在|正在)?(?:没空|在忙|很忙|开会|开车|上班)|现在不方便", 0.6,
          negatable=False),
    _rule("zh.identity_question.who", I.IDENTITY_QUESTION,
          r"你(?:们)?是谁|哪位|谁啊|谁呀|是谁|什么事|怎么回事|这是什么|干什么的|什么意思|什么贷款|(?:哪个|哪家|什么)(?:公司|平台|机构)|"
          r"你们是(?:哪|什么)", 0.8),
    _rule("zh.balance_inquiry.how_much", I.BALANCE_INQUIRY,
          r"(?:差|欠|剩|要还|需要还|应还|一共|总共|还有)[^，,。！!？?]{0,4}多少|多少钱|余额|待还(?:金额|多少)|欠款(?:是)?多少|"
          r"还多少", 0.8),
    _rule("zh.help.question", I.HELP,
          r"怎么还(?![没不在有是])|在哪(?:里)?还|什么时候到期|还款日|到期日|哪天还|咨询|帮助|怎么(?:付|支付|转账)", 0.75),
)

# --- Korean -------------------------------------------------------------------
# (normalisation removes spaces between Hangul words, so "돈 이 없어요" arrives as
# "돈이없어요"; the optional \s* in these patterns is for readability only)

KO_RULES: tuple[Rule, ...] = (
    _rule("ko.opt_out.unsubscribe", I.OPT_OUT, r"수신\s*거부|수신\s*차단|문자\s*사절", 0.95, negatable=False),
    _rule("ko.opt_out.stop", I.OPT_OUT,
          r"(?:문자|전화|연락)?\s*그만(?!큼|두|둬|뒀|둘)|(?:문자|전화|연락)\s*(?:하지|보내지)\s*(?:마|말)|"
          r"(?:보내지|연락하지|전화하지)\s*(?:마|말)", 0.95, negatable=False, media=True),
    _rule("ko.wrong_number.wrong", I.WRONG_NUMBER,
          r"잘못\s*(?:거셨|걸었|건|보내|연락|된\s*번호)|번호\s*(?:를\s*)?잘못|그런\s*사람\s*(?:없|몰라|모릅)|"
          r"모르는\s*사람|그런\s*(?:사람|분)[^\s,.]{0,4}(?:없|안\s*계)|(?:그|그분|그\s*사람)\s*(?:의\s*)?번호\s*(?:가\s*)?아(?:니|닌|닙|님)|"
          r"(?:그\s*사람|그분)\s*(?:이|은)?\s*아(?:니|닌|닙|님)|본인이?\s*아(?:니|닌|닙|님)|(?:제|저)\s*번호가?\s*아(?:니|닌|닙|님)|"
          r"(?:그|그런)\s*(?:사람|분)(?:을|은)?\s*(?:몰라|모릅|모르)", 0.9, negatable=False),
    _rule("ko.dispute.not_mine", I.DISPUTE,
          r"(?:제|내|저의)\s*(?:대출|빚|채무)이?\s*아니|(?:대출|빚|채무)(?:이|가)\s*아니|빌린\s*적\s*(?:이\s*)?없|"
          r"대출(?:을|한|받은)?\s*(?:받은\s*)?적\s*(?:이\s*)?없|"
          r"금액이?\s*(?:틀|잘못|이상|안\s*맞)|이의|사기", 0.9, negatable=False),
    _rule("ko.paid.paid", I.PAID,
          r"이미\s*(?:냈|납부|입금|갚|송금|보냈|결제|지불)|(?:냈|납부했|입금했|갚았|송금했|결제했|지불했)(?:어요|습니다|어|다|는데)|"
          r"(?:납부|입금|결제|송금|이체|계좌\s*이체)\s*(?:완료|했)|이체\s*했", 0.9),
    _rule("ko.promise_to_pay.will", I.PROMISE_TO_PAY,
          r"(?:낼|갚을|납부할|입금할|송금할|보낼|지불할|결제할)\s*(?:게요|께요|게|께|거예요|겁니다|예정|수\s*있)|"
          r"(?:내|갚|납부하|입금하|보내|송금하)겠(?:습니다|어요)", 0.85),
    _rule("ko.hardship.hardship", I.HARDSHIP,
          r"실직|직장을?\s*잃|해고|돈이?\s*없|여유가?\s*없|(?:갚을|낼)\s*(?:수|돈이)\s*없|형편이?\s*(?:어렵|안\s*좋)|"
          r"어려워|어렵|힘들|병원|입원|아파|아프|수술|그만뒀|그만두", 0.85, negatable=False),
    _rule("ko.callback_request.call_me", I.CALLBACK_REQUEST,
          r"다시\s*전화|전화\s*(?:주세요|줘|주실|해\s*주세요|부탁)|(?:나중에|이따가?|저녁에|오후에|내일)\s*(?:다시\s*)?"
          r"(?:전화|연락)|상담원|담당자", 0.85),
    _rule("ko.callback_request.busy", I.CALLBACK_REQUEST, r"바빠|바쁘|운전\s*중|회의\s*중|통화\s*(?:못|어려)", 0.6,
          negatable=False),
    _rule("ko.identity_question.who", I.IDENTITY_QUESTION,
          r"누구(?:세요|신가요|야|예요|시죠|십니까|신데|인데|세요|시오)|누군데|누구시|어디(?:세요|신가요|예요|시죠|십니까)|"
          r"무슨\s*(?:일|대출|돈|내용|용건)|뭐예요|뭔가요|어디서\s*(?:오|보내)", 0.8),
    _rule("ko.balance_inquiry.how_much", I.BALANCE_INQUIRY,
          r"얼마\s*(?:나\s*)?(?:남|내야|갚아야|예요|인가요|죠|입니까)|잔액|남은\s*(?:금액|돈|잔액|빚)|총\s*얼마|갚을\s*돈이?\s*얼마", 0.8),
    _rule("ko.help.question", I.HELP, r"어떻게\s*(?:내|납부|갚|입금|결제)", 0.75),
)

# --- Spanish ------------------------------------------------------------------
# (normalisation folds accents: "pagué" arrives as "pague", "número" as "numero",
# "mañana" as "manana"; the patterns are written in that form)

_ES_MEDIUM = r"(?:llamar(?:me|nos)?|llamadas?|mandar(?:me)?|enviar(?:me)?|escribir(?:me)?|mensajes?|textos?|sms|" \
             r"molestar(?:me)?|contactar(?:me)?|correos?)"
# past-tense payment verbs (first person preterite, accents folded)
_ES_PAID_VERB = r"(?:pague|pagamos|deposite|depositamos|transferi|transferimos|mande|mandamos|envie|enviamos|abone|" \
                r"liquide|salde|cubri)"

ES_RULES: tuple[Rule, ...] = (
    _rule("es.opt_out.stop_contact", I.OPT_OUT,
          rf"\bno (?:me |nos )?(?:vuelvan a |vuelva a )?(?:llamen|llame|manden|mande|envien|envie|escriban|escriba|"
          rf"contacten|contacte|molesten|moleste|marquen)\b|\bdej(?:en|e|a) de {_ES_MEDIUM}|"
          rf"\bno quiero (?:recibir )?(?:mas )?(?:mensajes|llamadas|textos|correos)\b|"
          rf"\b(?:borren|borrenme|quiten|quitenme|saquen|saquenme|eliminen)(?:me)? (?:de|del) (?:su |la |sus )?(?:lista|sistema)\b|"
          rf"\bno mas (?:mensajes|llamadas|textos|correos)\b|\bdarme de baja\b|\bden(?:me)? de baja\b",
          0.95, negatable=False, media=True),
    _rule("es.wrong_number.wrong", I.WRONG_NUMBER,
          r"\bnumero equivocado\b|\bse (?:equivoco|equivocaron|equivoca|equivocan) de (?:numero|persona)\b|"
          r"\bequivocad[oa]s? de numero\b|\bno es (?:mi|su|el) numero\b|\b(?:ese|este|esta) no es (?:su|el) (?:numero|telefono)\b|"
          r"\bya no es (?:de el|de ella|su numero|suyo|de esa persona)\b|\bno conozco a\b|\bno (?:se|sabemos) quien es\b|"
          r"\baqui no (?:vive|hay|esta|trabaja)\b|\bno (?:vive|esta) aqui\b|\bno hay nadie (?:con|que se llame|aqui|asi)\b|"
          r"\bnadie (?:con ese nombre|se llama asi|que se llame)\b|\bpersona equivocada\b|\bes mi numero (?:nuevo|ahora)\b",
          0.9, negatable=False),
    _rule("es.dispute.not_mine", I.DISPUTE,
          r"\bno (?:les |le )?debo nada\b|\bno (?:es|son) (?:mi|mis) (?:deuda|prestamo|cuenta|cargo)s?\b|"
          r"\bnunca (?:pedi|saque|solicite|tuve|firme|he pedido|he sacado)\b|\bno (?:pedi|saque|solicite) (?:ningun|ese|un)\b|"
          r"\b(?:estafa|fraude|estafadores|robo de identidad)\b|\b(?:el |la )?(?:monto|cantidad|saldo|cobro) (?:esta|es) "
          r"(?:mal|incorrect[oa]|equivocad[oa])\b|\bno reconozco\b|\bme cobraron (?:de mas|dos veces)\b",
          0.9, negatable=False),
    _rule("es.paid.already", I.PAID,
          rf"\bya (?:se |lo |la |les |le |te )?(?:{_ES_PAID_VERB}|hice|hicimos|realice|he pagado|hemos pagado|pagaste)\b|"
          rf"(?<!que )(?<!cuando )(?<!si )\b(?:lo |la |les |le |te )?{_ES_PAID_VERB}\b(?! (?:el|la) (?:pago|cuota) (?:de|del) "
          rf"(?:viernes|lunes))|\b(?:hice|hicimos|realice|mande|envie) (?:el|la|un|una|mi) (?:pago|transferencia|deposito|"
          rf"abono)\b|\b(?:ya )?(?:esta|quedo|fue|estan) (?:pagad[oa]s?|liquidad[oa]|saldad[oa]|cubiert[oa])\b|"
          rf"\b(?:el pago|la transferencia|el deposito) (?:ya )?se (?:hizo|realizo|envio|mando)\b|\bya se (?:pago|hizo|realizo)\b|"
          rf"\bhe pagado\b|\bhemos pagado\b",
          0.9),
    _rule("es.paid.did_you_get", I.PAID,
          r"\b(?:recibieron|recibio|les llego|le llego|vieron) (?:mi|el) (?:pago|deposito|transferencia|dinero)\b", 0.7,
          negatable=False),
    _rule("es.promise_to_pay.will", I.PROMISE_TO_PAY,
          r"\b(?:voy|vamos|va) a (?:pagar|depositar|mandar|enviar|transferir|hacer el pago|abonar|liquidar)\b|"
          r"\b(?:pagare|pagaremos|depositare|mandare|enviare|transferire|abonare|liquidare)\b|"
          r"\b(?:le|les|te|se lo|se los) (?:pago|deposito|mando|transfiero|abono)\b|\b(?:puedo|podemos|podria|pienso|"
          r"quiero|planeo) (?:pagar|depositar|hacer el pago|abonar|mandar)\b|\bhare el pago\b", 0.85),
    _rule("es.hardship.hardship", I.HARDSHIP,
          r"\b(?:perdi|me quede sin|no tengo|estoy sin) (?:mi |el )?(?:trabajo|empleo|chamba|dinero|plata|fondos)\b|"
          r"\bdesempleado\b|\bme (?:despidieron|corrieron)\b|\bno (?:puedo|podemos|podre) pagar\b|\bno me alcanza\b|"
          r"\bestoy (?:enferm[oa]|hospitalizad[oa]|internad[oa])\b|\bhospital\b|\bcirugia\b|\bfallecio\b|"
          r"\bnecesito (?:mas tiempo|un plan|una extension|una prorroga)\b|\bplan de pagos\b|\bpagos mas pequenos\b|"
          r"\bno tengo (?:con que|como) pagar\b|\bdificultades? (?:economicas?|financieras?)\b",
          0.85, negatable=False),
    _rule("es.callback_request.call_me", I.CALLBACK_REQUEST,
          r"\b(?:llamenme|llameme|llamame|marquenme|marqueme)\b|\b(?:me |nos )?(?:pueden|puede|podrian|podria) "
          r"(?:llamar|marcar)(?:me)?\b|\bllamar(?:me)? (?:mas tarde|despues|manana|luego)\b|\bhablar con (?:alguien|una "
          r"persona|un agente|un representante)\b|\bestoy ocupad[oa]\b|\bestoy trabajando\b|\bestoy manejando\b",
          0.85),
    _rule("es.identity_question.who", I.IDENTITY_QUESTION,
          r"\bquien(?:es)? (?:es|habla|eres|son|me escribe|me llama|manda)\b|\bde (?:que|donde) (?:se trata|es esto|"
          r"(?:compania|empresa) (?:son|es|llaman))\b|\bque es esto\b|\bpara que es esto\b|\bpor que me (?:escriben|llaman|"
          r"mandan)\b|\bquien(?:es)? (?:son ustedes|es usted)\b|\bque (?:compania|empresa) es\b", 0.8),
    _rule("es.balance_inquiry.how_much", I.BALANCE_INQUIRY,
          r"\bcuanto (?:debo|le debo|les debo|me falta|falta|queda|es|tengo que pagar|hay que pagar|debemos|se debe)\b|"
          r"\b(?:mi|el) saldo\b|\bcual es (?:mi|el) (?:saldo|balance|adeudo)\b|\bsaldo pendiente\b", 0.8),
    _rule("es.help.how_to_pay", I.HELP,
          r"\bcomo (?:puedo |podemos )?(?:pago|pagar|hago el pago|deposito|depositar)\b|\bdonde (?:puedo )?(?:pago|pagar)\b|"
          r"\bnecesito ayuda\b|\bmas informacion\b|\bno entiendo\b", 0.7),
)
