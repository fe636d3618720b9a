"""The treatment policy file and the message templates it refers to."""

from __future__ import annotations

import shutil
import textwrap
from datetime import date
from pathlib import Path

import pytest

from bot.policy import DEFAULT_POLICY_FILE, SINGLE_ARM, PolicyError, load_policy, step_label
from bot.rendering import Renderer, TemplateProblem, money, render_email, render_sms, sample_context

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
LOCALES = ("en-US", "zh-CN", "ko-KR", "es-US")


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A writable copy of the shipped templates."""
    target = tmp_path / "templates"
    shutil.copytree(TEMPLATES, target)
    return target


def write_policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def problems_of(path: Path, **kwargs) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(path, **kwargs)
    return info.value.problems


# --- the shipped policy ------------------------------------------------------------


def test_default_policy_loads_with_the_documented_ladder() -> None:
    policy = load_policy()
    assert policy.source == str(DEFAULT_POLICY_FILE)
    assert policy.locales == LOCALES
    ladder = policy.arms[SINGLE_ARM]
    assert [(s.day, s.channel, s.template) for s in ladder.steps] == [
        (-3, "sms", "reminder_upcoming"),
        (0, "email", "reminder_due"),
        (1, "sms", "reminder_overdue"),
        (3, "voice", "first_stage"),
        (7, "voice", "first_stage"),
        (15, "human", None),
    ]
    assert policy.experiment is None
    assert {policy.arm_for(f"B{i}") for i in range(50)} == {SINGLE_ARM}


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-4, None), (-3, "D-3:sms"), (-1, "D-3:sms"), (0, "D0:email"), (2, "D+1:sms"), (3, "D+3:voice"),
     (6, "D+3:voice"), (14, "D+7:voice"), (15, "D+15:human"), (22, "D+15:human"), (23, None)],
)
def test_current_step_is_the_latest_step_not_after_the_offset(offset: int, expected: str | None) -> None:
    policy = load_policy()
    step = policy.arms[SINGLE_ARM].current_step(offset, policy.horizon_days)
    assert (step.label if step else None) == expected


def test_due_date_window_covers_every_zone() -> None:
    policy = load_policy()
    low, high = policy.due_date_window(date(2026, 11, 28))
    # last step D+15 plus a 7-day horizon, first step D-3; one day of margin each side
    assert low == date(2026, 11, 28).fromordinal(date(2026, 11, 28).toordinal() - 23)
    assert high == date(2026, 12, 2)


def test_step_labels() -> None:
    assert [step_label(d) for d in (-3, 0, 1)] == ["D-3", "D0", "D+1"]


# --- templates ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_sms_templates_render_and_end_with_the_opt_out(locale: str) -> None:
    endings = {"en-US": "Reply STOP to opt out.", "zh-CN": "回T退订", "ko-KR": "수신거부: STOP 회신",
               "es-US": "Responda ALTO para cancelar."}
    context = sample_context("sms", locale) | {"lender_name": "Acme Loans", "lender_phone": "+18005550199"}
    for name in ("reminder_upcoming", "reminder_due", "reminder_overdue"):
        text = render_sms(name, locale, context)
        assert text.endswith(endings[locale]), (name, locale)
        assert "Acme Loans" in text and "+18005550199" in text
        assert "\n" not in text


@pytest.mark.parametrize(("borrower", "served"), [
    ("es-US", "es-US"), ("es-MX", "es-US"), ("es_ES", "es-US"), ("es", "es-US"),
    ("en-GB", "en-US"), ("fr-CA", "en-US"), (None, "en-US"),
])
def test_borrowers_get_the_served_locale_of_their_language(borrower: str | None, served: str) -> None:
    assert load_policy().locale_for(borrower) == served


def test_money_and_date_follow_the_locale() -> None:
    assert money(12345, "USD", "en-US") == "$123.45"
    assert money(150000, "KRW", "ko-KR") == "₩150,000"
    assert money(123456, "CNY", "zh-CN") == "¥1,234.56"
    context = sample_context("sms", "zh-CN")
    assert "2026年1月15日" in render_sms("reminder_upcoming", "zh-CN", context)


@pytest.mark.parametrize("locale", LOCALES)
def test_emails_have_subject_text_html_and_a_visible_unsubscribe_link(locale: str) -> None:
    context = sample_context("email", locale) | {"unsubscribe_url": "https://lender.test/u/abc123"}
    for name in ("reminder_due", "reminder_overdue"):
        subject, text, html = render_email(name, locale, context)
        assert subject and "\n" not in subject
        assert "https://lender.test/u/abc123" in text
        assert 'href="https://lender.test/u/abc123"' in html
        assert html.lstrip().startswith("<!DOCTYPE html>") and f'lang="{locale}"' in html


def test_html_is_autoescaped_but_text_is_not() -> None:
    context = sample_context("email", "en-US") | {"first_name": "<b>Al</b>"}
    _subject, text, html = render_email("reminder_due", "en-US", context)
    assert "<b>Al</b>" in text
    assert "&lt;b&gt;Al&lt;/b&gt;" in html and "<b>Al</b>" not in html


def test_cjk_names_are_kept_whole_and_western_names_shortened() -> None:
    from bot.rendering import first_name

    assert first_name("Jane Q. Doe") == "Jane"
    assert first_name("张伟") == "张伟"
    assert first_name("김 민준") == "김민준"


def test_reminder_context_counts_days_in_the_borrowers_date() -> None:
    from bot.rendering import reminder_context

    common = dict(full_name="Jane Doe", locale="en-US", amount_minor=500, currency="USD", due_date=date(2026, 12, 1),
                  loan_id="L-0009876", lender_name="Acme", lender_phone="+18005550199", lender_email="a@b.example")
    before = reminder_context(today=date(2026, 11, 28), **common)
    after = reminder_context(today=date(2026, 12, 4), unsubscribe_url="https://x.example/u", **common)
    assert (before["days_to_due"], before["days_late"], before["loan_ref"]) == (3, 0, "9876")
    assert (after["days_to_due"], after["days_late"]) == (0, 3)
    assert "unsubscribe_url" not in before and after["unsubscribe_url"] == "https://x.example/u"
    assert before["first_name"] == "Jane"
    assert "Jane Doe" not in render_sms("reminder_overdue", "en-US", after)


def test_renderer_refuses_path_like_names(templates: Path) -> None:
    with pytest.raises(ValueError):
        Renderer(templates).render_sms("../../etc/passwd", "en-US", {})
    with pytest.raises(ValueError):
        Renderer(templates).render_sms("reminder_due", "../en-US", {})


# --- errors name the file and line ---------------------------------------------------------

GOOD_STEPS = yaml_text("""
    version: 1
    locales: [en-US, zh-CN, ko-KR]
    steps:
      - day: -3
        channel: sms
        template: reminder_upcoming
      - day: 0
        channel: email
        template: reminder_due
""")


def test_a_valid_custom_policy_loads(tmp_path: Path, templates: Path) -> None:
    policy = load_policy(write_policy(tmp_path, GOOD_STEPS), templates_dir=templates)
    assert [s.label for s in policy.arms[SINGLE_ARM].steps] == ["D-3:sms", "D0:email"]
    assert policy.arms[SINGLE_ARM].steps[1].line == 7


def test_unknown_channel_names_file_and_line(tmp_path: Path) -> None:
    path = write_policy(tmp_path, GOOD_STEPS.replace("channel: email", "channel: fax"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:8: ") and "unknown channel" in problem and "steps[1].channel" in problem


def test_unknown_template_names_file_and_line(tmp_path: Path, templates: Path) -> None:
    path = write_policy(tmp_path, GOOD_STEPS.replace("template: reminder_due", "template: reminder_nope"))
    problems = problems_of(path, templates_dir=templates)
    assert len(problems) == 3  # one per locale the step serves (GOOD_STEPS: en-US, zh-CN, ko-KR)
    for locale, problem in zip(LOCALES[:3], problems, strict=True):
        assert problem.startswith(f"{path}:9: ")
        assert f"email/{locale}/reminder_nope.subject.j2" in problem and "does not exist" in problem


def test_a_missing_locale_file_is_reported_for_that_locale(tmp_path: Path, templates: Path) -> None:
    (templates / "sms" / "ko-KR" / "reminder_upcoming.txt.j2").unlink()
    path = write_policy(tmp_path, GOOD_STEPS)
    [problem] = problems_of(path, templates_dir=templates)
    assert problem.startswith(f"{path}:6: ") and "for ko-KR" in problem
    assert "sms/ko-KR/reminder_upcoming.txt.j2" in problem


def test_missing_html_part_of_an_email(tmp_path: Path, templates: Path) -> None:
    (templates / "email" / "zh-CN" / "reminder_due.html.j2").unlink()
    [problem] = problems_of(write_policy(tmp_path, GOOD_STEPS), templates_dir=templates)
    assert "email/zh-CN/reminder_due.html.j2" in problem and ":9: " in problem


def test_template_syntax_error_names_policy_line_and_template_line(tmp_path: Path, templates: Path) -> None:
    file = templates / "sms" / "zh-CN" / "reminder_upcoming.txt.j2"
    file.write_text("第一行\n{{ lender_name }\n", encoding="utf-8")
    path = write_policy(tmp_path, GOOD_STEPS)
    [problem] = problems_of(path, templates_dir=templates)
    assert problem.startswith(f"{path}:6: ")
    assert "sms/zh-CN/reminder_upcoming.txt.j2:2: syntax error" in problem


def test_undefined_variable_is_caught_at_load_time(tmp_path: Path, templates: Path) -> None:
    file = templates / "email" / "ko-KR" / "reminder_due.txt.j2"
    file.write_text("안녕하세요\n\n{{ borrower_ssn }}\n", encoding="utf-8")
    path = write_policy(tmp_path, GOOD_STEPS)
    [problem] = problems_of(path, templates_dir=templates)
    assert problem.startswith(f"{path}:9: ")
    assert "email/ko-KR/reminder_due.txt.j2:3: undefined variable" in problem and "borrower_ssn" in problem


def test_unsubscribe_url_is_not_available_to_sms(tmp_path: Path, templates: Path) -> None:
    file = templates / "sms" / "en-US" / "reminder_upcoming.txt.j2"
    file.write_text("Hi {{ first_name }} {{ unsubscribe_url }} Reply STOP to opt out.\n", encoding="utf-8")
    [problem] = problems_of(write_policy(tmp_path, GOOD_STEPS), templates_dir=templates)
    assert "unsubscribe_url" in problem and "sms/en-US/reminder_upcoming.txt.j2:1" in problem


def test_undefined_variable_in_an_email_layout_names_the_layout(templates: Path) -> None:
    layout = templates / "email" / "_layout.html.j2"
    lines = layout.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if "{{ lender_name }}" in line)
    lines[index] = lines[index].replace("{{ lender_name }}", "{{ lender_nam }}")
    layout.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TemplateProblem) as info:
        Renderer(templates).validate("email", "reminder_due", "en-US")
    assert info.value.path == "email/_layout.html.j2" and info.value.line == index + 1


def test_overlapping_steps_name_both_lines(tmp_path: Path) -> None:
    path = write_policy(tmp_path, GOOD_STEPS + "  - day: 0\n    channel: sms\n    template: reminder_due\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:10: ") and "overlaps the step at line 7" in problem


@pytest.mark.parametrize(
    ("replacement", "line", "words"),
    [
        ("day: 0", "day: zero", "steps[1].day"),
        ("day: 0", "day: 400", "less than or equal to 365"),
        ("day: 0", "day: true", "steps[1].day"),
        ("day: 0", "day: 1.5", "steps[1].day"),
    ],
)
def test_bad_day_values(tmp_path: Path, replacement: str, line: str, words: str) -> None:
    path = write_policy(tmp_path, GOOD_STEPS.replace(replacement, line))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:7: ") and words in problem


def test_unknown_and_missing_keys(tmp_path: Path) -> None:
    body = GOOD_STEPS.replace("template: reminder_due", "templat: reminder_due").replace("    channel: sms\n", "")
    path = write_policy(tmp_path, body)
    problems = problems_of(path)
    assert f"{path}:4: steps[0].channel: missing key" in problems
    assert f"{path}:8: steps[1].templat: unknown key" in problems


def test_wrong_content_key_for_the_channel(tmp_path: Path) -> None:
    path = write_policy(tmp_path, GOOD_STEPS + (
        "  - day: 3\n    channel: voice\n    template: first_stage\n"
        "  - day: 9\n    channel: human\n    script: first_stage\n"
    ))
    problems = problems_of(path)
    assert any(p.startswith(f"{path}:12: ") and "takes 'script'" in p for p in problems)
    assert any(p.startswith(f"{path}:10: ") and "needs 'script'" in p for p in problems)
    assert any(p.startswith(f"{path}:15: ") and "hand-off" in p for p in problems)


def test_missing_voice_script(tmp_path: Path) -> None:
    path = write_policy(tmp_path, GOOD_STEPS + "  - day: 3\n    channel: voice\n    script: second_stage\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:12: ") and "voice script 'second_stage'" in problem
    assert problem.endswith("scripts/second_stage does not exist")


def test_voice_script_must_serve_the_policy_locales(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    (scripts / "first_stage").mkdir(parents=True)
    shipped = ROOT / "bot" / "scripts" / "first_stage" / "en-US.yaml"
    (scripts / "first_stage" / "en-US.yaml").write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    path = write_policy(tmp_path, GOOD_STEPS + "  - day: 3\n    channel: voice\n    script: first_stage\n")
    [problem] = problems_of(path, scripts_dir=scripts)
    assert problem.startswith(f"{path}:12: ") and "does not serve zh-CN, ko-KR" in problem


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nsteps:\n  - day: 1\n    channel: [sms\n", encoding="utf-8")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:") and "YAML syntax error" in problem
    assert int(problem.split(":")[1]) >= 4


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = write_policy(tmp_path, GOOD_STEPS.replace("version: 1\n", "version: 1\nversion: 1\n"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:2: ") and "duplicate key 'version'" in problem


def test_when_locales_must_be_policy_locales_and_limit_the_template_check(tmp_path: Path, templates: Path) -> None:
    (templates / "sms" / "ko-KR" / "reminder_upcoming.txt.j2").unlink()
    limited = "template: reminder_upcoming\n    when: {locales: [en-US, zh-CN]}"
    body = GOOD_STEPS.replace("template: reminder_upcoming", limited)
    policy = load_policy(write_policy(tmp_path, body), templates_dir=templates)
    assert policy.arms[SINGLE_ARM].steps[0].when.locales == frozenset({"en-US", "zh-CN"})
    bad = GOOD_STEPS.replace("template: reminder_upcoming", "template: reminder_upcoming\n    when: {locales: [fr-FR]}")
    [problem] = problems_of(write_policy(tmp_path, bad), templates_dir=templates)
    assert "when.locales[0]: not one of the policy's locales" in problem


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write_policy(tmp_path, GOOD_STEPS.replace("channel: email", "channel: fax").replace("day: -3", "day: x"))
    assert len(problems_of(path)) == 2


def test_missing_file() -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy("/nonexistent/policy.yaml")


# --- A/B ---------------------------------------------------------------------------------

EXPERIMENT = yaml_text("""
    version: 1
    experiment:
      name: sms-vs-email
      split: 50
      start: 2026-11-01
      end: 2026-11-30
      a:
        steps:
          - {day: -3, channel: sms, template: reminder_upcoming}
          - {day: 1, channel: sms, template: reminder_overdue}
      b:
        steps:
          - {day: 0, channel: email, template: reminder_due}
          - {day: 2, channel: email, template: reminder_overdue}
""")


def test_experiment_arms_are_stable_and_roughly_even(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, EXPERIMENT))
    assert set(policy.arms) == {"A", "B"}
    assert policy.first_day == -3 and policy.last_day == 2 + 7
    ids = [f"B{i:06d}" for i in range(10_000)]
    arms = [policy.arm_for(i) for i in ids]
    share_a = arms.count("A") / len(arms)
    assert 0.47 < share_a < 0.53
    # stable: a second load (another process would do the same) gives the same arms
    again = load_policy(write_policy(tmp_path, EXPERIMENT))
    assert [again.arm_for(i) for i in ids] == arms
    # the documented formula, so other tools can reproduce the split
    import hashlib

    bucket = int.from_bytes(hashlib.sha256(b"sms-vs-email:B000007").digest()[:8], "big") % 100
    assert policy.arm_for("B000007") == ("A" if bucket < 50 else "B")


def test_uneven_split(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, EXPERIMENT.replace("split: 50", "split: 20")))
    share_a = sum(policy.arm_for(f"X{i}") == "A" for i in range(10_000)) / 10_000
    assert 0.17 < share_a < 0.23


def test_steps_and_experiment_are_exclusive(tmp_path: Path) -> None:
    body = EXPERIMENT + "steps:\n  - {day: 0, channel: email, template: reminder_due}\n"
    [problem] = problems_of(write_policy(tmp_path, body))
    assert "give one of 'steps', 'experiment' (with two ladders a and b) or 'ladders'" in problem


def test_experiment_errors_point_into_the_arm(tmp_path: Path) -> None:
    path = write_policy(tmp_path, EXPERIMENT.replace("{day: 2, channel: email", "{day: 0, channel: email"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:14: ") and "overlaps the step at line 13" in problem


def test_experiment_window_champion_and_margin(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, EXPERIMENT))
    exp = policy.experiment
    assert exp is not None
    assert (exp.start, exp.end) == (date(2026, 11, 1), date(2026, 11, 30))
    assert exp.arms == ("A", "B") and exp.guardrail_margin == 0.005  # defaults: a is the champion
    body = EXPERIMENT.replace("  split: 50\n", "  split: 50\n  champion: b\n  guardrail_margin: 0.02\n")
    exp = load_policy(write_policy(tmp_path, body)).experiment
    assert exp is not None and exp.arms == ("B", "A") and exp.guardrail_margin == 0.02


def test_experiment_needs_a_window_and_a_known_champion(tmp_path: Path) -> None:
    path = write_policy(tmp_path, EXPERIMENT.replace("  end: 2026-11-30\n", ""))
    [problem] = problems_of(path)
    assert problem == f"{path}:2: experiment.end: missing key"
    path = write_policy(tmp_path, EXPERIMENT.replace("end: 2026-11-30", "end: 2026-10-30"))
    [problem] = problems_of(path)
    assert problem == f"{path}:6: experiment.end 2026-10-30 is before experiment.start 2026-11-01"
    path = write_policy(tmp_path, EXPERIMENT.replace("  split: 50\n", "  split: 50\n  champion: c\n"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:5: experiment.champion: ")
    path = write_policy(tmp_path, EXPERIMENT.replace("start: 2026-11-01", "start: soon"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:5: experiment.start: ")
    path = write_policy(tmp_path, EXPERIMENT.replace("  split: 50\n", "  split: 50\n  guardrail_margin: 2\n"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:5: experiment.guardrail_margin: ")
