"""The few HTML pages the borrower may see (email unsubscribe), in their language.

Deliberately tiny: no scripts, no external resources, escaped values only, and
headers that keep the token-bearing URL out of caches, search engines and
``Referer`` headers, and the page out of other sites' frames.  English, Chinese and Korean; other locales get English.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Protocol

__all__ = ["PAGE_HEADERS", "PageText", "page", "texts_for"]

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    # No framing by any site (the button must not be clickjacked): CSP for current
    # browsers, X-Frame-Options for the older ones that ignore frame-ancestors.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class PageText:
    lang: str
    title: str
    confirm: str  # {lender} {email}
    button: str
    done: str  # {lender} {email}
    invalid: str  # {lender_email}
    bad_request: str


_TEXTS = {
    "en": PageText(
        lang="en",
        title="Unsubscribe",
        confirm="Stop emails from {lender} to {email}?",
        button="Unsubscribe",
        done="You are unsubscribed. {lender} will send no more emails to {email}.",
        invalid="This unsubscribe link is not valid. If you keep receiving emails, write to {lender_email}.",
        bad_request="This request could not be understood. Please use the button on the unsubscribe page.",
    ),
    "zh": PageText(
        lang="zh-CN",
        title="退订邮件",
        confirm="不再接收{lender}发送到 {email} 的邮件？",
        button="退订",
        done="您已退订。{lender}将不再向 {email} 发送邮件。",
        invalid="此退订链接无效。如果您仍然收到邮件，请联系 {lender_email}。",
        bad_request="无法处理此请求。请使用退订页面上的按钮。",
    ),
    "ko": PageText(
        lang="ko-KR",
        title="수신 거부",
        confirm="{lender}에서 {email}(으)로 보내는 이메일 수신을 거부하시겠습니까?",
        button="수신 거부",
        done="수신 거부되었습니다. {lender}에서 더 이상 {email}(으)로 이메일을 보내지 않습니다.",
        invalid="유효하지 않은 수신 거부 링크입니다. 계속 이메일을 받으시면 {lender_email}(으)로 연락해 주세요.",
        bad_request="요청을 처리할 수 없습니다. 수신 거부 페이지의 버튼을 사용해 주세요.",
    ),
}


def texts_for(locale: str | None) -> PageText:
    language = (locale or "en").split("-")[0].split("_")[0].lower()
    return _TEXTS.get(language, _TEXTS["en"])


class Titled(Protocol):
    """What :func:`page` reads of a page's texts (``button`` only with ``form``)."""

    @property
    def lang(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def button(self) -> str: ...


def page(text: Titled, message: str, *, form: bool = False, **values: str) -> str:
    """A complete HTML page: the title, ``message`` filled with escaped ``values`` and, with
    ``form``, the one-click button (a POST of ``List-Unsubscribe=One-Click`` to this same URL)."""
    body = escape(message).format(**{k: escape(v) for k, v in values.items()})
    button = (
        '<form method="post">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">{escape(text.button)}</button></form>'
    ) if form else ""
    return (
        f'<!doctype html><html lang="{text.lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(text.title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
        "button{font-size:1.1rem;padding:.5rem 1.5rem}</style></head>"
        f"<body><h1>{escape(text.title)}</h1><p>{body}</p>{button}</body></html>"
    )
