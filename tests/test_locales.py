"""Locales: es-US shipped, and a locale added by configuration alone (docs/locales.md)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.channels.voice import script_locale
from bot.messages import ComposeError, MessageData, TemplateCheckError, compose, validate_templates
from bot.messages.checks import ends_with_opt_out, with_opt_out
from bot.policy import load_policy
from bot.rendering import Renderer
from bot.scripts import load_script
from test_messages import Attempt

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
SCRIPTS = ROOT / "bot" / "scripts"
FRENCH_LINE = "Répondez ARRET pour vous désabonner."


def data(locale: str, full_name: str = "Marie Tremblay") -> MessageData:
    return MessageData(borrower_id="B1", full_name=full_name, locale=locale, loan_id="L-2026-0042",
                       currency="USD", due_date=date(2026, 1, 18), outstanding_minor=12345)


# --- es-US, shipped --------------------------------------------------------------------------------


@pytest.mark.parametrize("borrower_locale", ["es-US", "es-MX", "es"])
def test_a_spanish_speaking_borrower_gets_spanish_reminders(borrower_locale: str) -> None:
    settings = load_settings()
    renderer = Renderer(TEMPLATES)
    locale = load_policy().locale_for(borrower_locale)
    assert locale == "es-US"
    planner = {"planner": {"locale": locale, "zone": "America/New_York"}}
    sms = compose(data(borrower_locale, "Ana García"), Attempt(template="reminder_due", decision=planner), settings,
                  renderer=renderer)
    assert sms.locale == "es-US" and sms.body.startswith("Example Lending: Hola Ana, su pago de $123.45")
    assert sms.body.endswith("Responda ALTO para cancelar.") and sms.encoding == "GSM-7"
    email = compose(data(borrower_locale, "Ana García"), Attempt(channel="email", template="reminder_due",
                                                                  address="ana@example.com", decision=planner),
                    settings, renderer=renderer)
    assert email.subject == "Example Lending: su pago de $123.45 vence hoy"
    assert "cancele la suscripción aquí" in email.body and 'lang="es-US"' in email.html
    assert load_script("first_stage", script_locale("first_stage", borrower_locale)).locale in ("es-US", "en-US")
    assert script_locale("first_stage", locale) == "es-US"


def test_the_spanish_opt_out_wording_comes_from_the_locale_file(tmp_path: Path) -> None:
    assert ends_with_opt_out("Gracias. Responda alto para cancelar", "es-US")
    assert ends_with_opt_out("Gracias. Reply STOP to opt out.", "es-MX")  # English everywhere
    assert with_opt_out("Gracias.", "es-MX") == "Gracias. Responda ALTO para cancelar."
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "sms/es-US/locale.yaml").write_text("opt_out:\n  - Escriba BASTA para salir.\n", encoding="utf-8")
    assert with_opt_out("Gracias.", "es-US", templates) == "Gracias. Escriba BASTA para salir."
    assert not ends_with_opt_out("Gracias. Responda ALTO para cancelar.", "es-US", templates)


# --- a locale added by configuration ----------------------------------------------------------------


FRENCH_SMS = ("{{ lender_name }} : Bonjour {{ first_name }}, votre paiement de "
              "{{ amount_minor|money(currency, locale) }} (prêt se terminant par {{ loan_ref }}) est dû "
              "aujourd'hui. Pour payer ou de l'aide, appelez le {{ lender_phone }}. "
              "{% if payment_url %}Payer en ligne : {{ payment_url }} {% endif %}" + FRENCH_LINE + "\n")


def french_script() -> str:
    """The es-US keypad script with a French locale, disclosure and keypad words: enough for the
    loader's checks, which read the French word lists (a test fixture, not a translation)."""
    text = (SCRIPTS / "first_stage" / "es-US.yaml").read_text(encoding="utf-8")
    spanish_to_french = {
        "locale: es-US": "locale: fr-CA",
        "Esta es una comunicación para el cobro de una deuda, y cualquier información que se obtenga\n"
        "  se usará con ese fin.": "Cet appel vise le recouvrement d'une dette; toute information obtenue\n"
                                   "  servira à cette fin.",
    }
    for old, new in spanish_to_french.items():
        assert old in text
        text = text.replace(old, new)
    lines = []
    for line in text.splitlines():
        line = line.replace("presione", "appuyez sur").replace("Presione", "Appuyez sur")
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """fr-CA exists only here: templates and scripts in one folder, the config file in another,
    the working directory in a third."""
    base = tmp_path / "site"
    templates = base / "templates"
    shutil.copytree(TEMPLATES, templates)
    french = templates / "sms" / "fr-CA"
    french.mkdir()
    for name in ("reminder_upcoming", "reminder_due", "reminder_overdue"):
        (french / f"{name}.txt.j2").write_text(FRENCH_SMS, encoding="utf-8")
    (french / "locale.yaml").write_text(f"# fr-CA\nopt_out:\n  - {FRENCH_LINE}\n", encoding="utf-8")
    scripts = base / "scripts" / "first_stage"
    scripts.mkdir(parents=True)
    shutil.copy(SCRIPTS / "first_stage" / "en-US.yaml", scripts / "en-US.yaml")
    (scripts / "fr-CA.yaml").write_text(french_script(), encoding="utf-8")
    policy = base / "policy.yaml"
    policy.write_text("version: 1\nlocales: [en-US, fr-CA]\nfallback_locale: en-US\nsteps:\n"
                      "  - {day: 0, channel: sms, template: reminder_due}\n"
                      "  - {day: 3, channel: voice, script: first_stage}\n", encoding="utf-8")
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / "bot.toml"
    config.write_text('[bot]\ntemplates_dir = "../site/templates"\nvoice_scripts_dir = "../site/scripts"\n',
                      encoding="utf-8")
    elsewhere = tmp_path / "work" / "elsewhere"  # "../site/templates" from here does not exist
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    for name in ("BOT_TEMPLATES_DIR", "BOT_VOICE_SCRIPTS_DIR", "BOT_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    return {"config": config, "templates": templates, "scripts": base / "scripts", "policy": policy}


def test_a_locale_added_by_configuration_is_used_end_to_end(site: dict[str, Path]) -> None:
    settings = load_settings(site["config"])
    assert settings.templates_dir.resolve() == site["templates"].resolve()  # the file's folder, not the cwd
    assert settings.voice_scripts_dir.resolve() == site["scripts"].resolve()
    policy = load_policy(site["policy"], templates_dir=settings.templates_dir, scripts_dir=settings.voice_scripts_dir)
    renderer = Renderer(settings.templates_dir)
    validate_templates(renderer, policy=policy, settings=settings)
    locale = policy.locale_for("fr_CA")
    assert locale == "fr-CA" and policy.locale_for("fr-FR") == "fr-CA"
    composed = compose(data("fr-CA"), Attempt(decision={"planner": {"locale": locale, "zone": "America/Toronto"}}),
                       settings, renderer=renderer)
    assert composed.locale == "fr-CA"
    assert composed.body.startswith("Example Lending : Bonjour Marie, votre paiement de")
    assert composed.body.endswith(FRENCH_LINE)
    assert with_opt_out("Merci.", "fr-CA", settings.templates_dir) == f"Merci. {FRENCH_LINE}"
    assert script_locale("first_stage", "fr-CA", scripts_dir=str(settings.voice_scripts_dir)) == "fr-CA"
    script = load_script("first_stage", "fr-CA", scripts_dir=settings.voice_scripts_dir)
    assert script.locale == "fr-CA"
    # the shipped package knows nothing of fr-CA
    assert script_locale("first_stage", "fr-CA") == "en-US"
    with pytest.raises(ComposeError) as info:
        compose(data("fr-CA"), Attempt(decision={"planner": {"locale": "fr-CA"}}), settings,
                renderer=Renderer(TEMPLATES))
    assert info.value.reason == "template_error"


def test_a_locale_without_its_opt_out_line_is_refused_at_load(site: dict[str, Path]) -> None:
    settings = load_settings(site["config"])
    policy = load_policy(site["policy"], templates_dir=settings.templates_dir, scripts_dir=settings.voice_scripts_dir)
    locale_file = site["templates"] / "sms" / "fr-CA" / "locale.yaml"
    locale_file.write_text("# fr-CA\nopt_outs:\n  - " + FRENCH_LINE + "\n", encoding="utf-8")
    with pytest.raises(TemplateCheckError) as info:
        validate_templates(Renderer(settings.templates_dir), policy=policy, settings=settings)
    problems = info.value.problems
    assert "templates/sms/fr-CA/locale.yaml:2: opt_outs: unknown key (expected opt_out)" in problems
    assert any(p.startswith("templates/sms/fr-CA/locale.yaml:1: opt_out: missing") for p in problems)
    # without the locale's wording its texts do not end with an accepted opt-out line
    assert any(p.startswith("templates/sms/fr-CA/reminder_due.txt.j2:1: ") and "opt-out" in p for p in problems)

    locale_file.unlink()
    with pytest.raises(TemplateCheckError) as info:
        validate_templates(Renderer(settings.templates_dir), policy=policy, settings=settings)
    assert any(p.startswith("templates/sms/fr-CA/locale.yaml: missing") for p in info.value.problems)


def test_a_locale_template_without_the_opt_out_line_names_its_file_and_line(site: dict[str, Path]) -> None:
    settings = load_settings(site["config"])
    policy = load_policy(site["policy"], templates_dir=settings.templates_dir, scripts_dir=settings.voice_scripts_dir)
    template = site["templates"] / "sms" / "fr-CA" / "reminder_due.txt.j2"
    template.write_text("{# rappel #}\n{{ lender_name }} : Bonjour {{ first_name }}, payez aujourd'hui.\n\n",
                        encoding="utf-8")
    with pytest.raises(TemplateCheckError) as info:
        validate_templates(Renderer(settings.templates_dir), policy=policy, settings=settings)
    [problem] = info.value.problems
    assert problem.startswith("templates/sms/fr-CA/reminder_due.txt.j2:2: template 'reminder_due' for locale fr-CA:")
    assert FRENCH_LINE in problem  # the example is the locale's own line
