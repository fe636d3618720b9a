"""bot.speech.tts: prompts rendered by espeak-ng in a worker, verified, cached, and a worker that fails.

Fault injection: the renderer takes the worker's command line, so the tests
run a worker whose render function hangs, crashes or lies for chosen texts and
delegates everything else to the real one.
"""

from __future__ import annotations

import os
import struct
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bot.speech.audio import read_wav
from bot.speech.tts import PromptRenderer, RenderedPrompt, TtsError, voice_for

pytestmark = pytest.mark.slow  # espeak-ng through pyttsx3 in a worker process: `pytest -m "not slow"` leaves it out

PROMPT_EN = "Hello, this is Example Lending calling about your payment."
PROMPT_KO = "안녕하세요, 예시 대출입니다. 지금 통화 가능하세요?"
PROMPT_ZH = "您好，这里是示例贷款，关于您的还款。"
PROMPT_ES = "Hola, le llama Example Lending. Si es usted, presione 1."

FAULTY_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from bot.speech import tts_worker

    MARKER = Path(sys.argv[1])

    def render(request):
        text = request["text"]
        if text == "hang forever":
            time.sleep(3600)
        if text == "crash always":
            os._exit(3)
        if text == "crash once" and not MARKER.exists():
            MARKER.write_text("crashed")
            os._exit(3)
        if text == "say nothing":
            return {"ok": True, "voice_id": "ko"}
        if text == "much too short":
            Path(request["out"]).write_bytes(bytes.fromhex(
                "52494646" "34000000" "57415645" "666d7420" "10000000" "0100" "0100" "22560000" "44ac0000" "0200"
                "1000" "64617461" "10000000") + b"\\x10\\x00" * 8)
            return {"ok": True, "voice_id": "ko"}
        if text == "no such voice":
            return {"ok": False, "error": "voice 'xx' is not installed in espeak-ng"}
        return tts_worker.render(request)

    tts_worker.serve(render)
    """
)


@pytest.fixture()
def faulty(tmp_path: Path) -> list[str]:
    script = tmp_path / "faulty_worker.py"
    script.write_text(FAULTY_WORKER, encoding="utf-8")
    return [sys.executable, str(script), str(tmp_path / "crashed.marker")]


@pytest.fixture()
def renderer(tmp_path: Path):  # type: ignore[no-untyped-def]
    with PromptRenderer(tmp_path / "cache", timeout_s=10) as r:
        yield r


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_voices_for_locales() -> None:
    assert voice_for("en-US") == "en-us"
    assert voice_for("zh-CN") == "cmn"
    assert voice_for("ko-KR") == "ko"
    assert voice_for("ko") == "ko"
    assert voice_for("en_AU") == "en-us"
    assert voice_for("zh-TW") == "cmn"
    assert voice_for("es-US") == voice_for("es-MX") == voice_for("es") == "es-419"  # Latin American Spanish
    with pytest.raises(ValueError, match="no text-to-speech voice for locale 'fr-FR'"):
        voice_for("fr-FR")


@pytest.mark.parametrize(("text", "locale"), [(PROMPT_EN, "en-US"), (PROMPT_KO, "ko-KR"), (PROMPT_ZH, "zh-CN"),
                                                (PROMPT_ES, "es-US")])
def test_renders_telephone_wav_and_second_render_is_a_cache_hit(renderer: PromptRenderer, text: str,
                                                                 locale: str) -> None:
    first = renderer.render(text, locale)
    assert isinstance(first, RenderedPrompt) and not first.cached
    assert first.path.parent == renderer.cache_dir and first.path.name == f"{first.sha}.wav"
    header = first.path.read_bytes()[:44]
    assert struct.unpack_from("<HHIIHH", header, 20) == (1, 1, 8000, 16000, 2, 16)  # PCM, mono, 8 kHz, 16-bit
    pcm = read_wav(first.path)
    assert pcm.rate == 8000 and pcm.duration_s == pytest.approx(first.duration_s)
    assert 1.0 < first.duration_s < 15.0
    renders = renderer.renders
    second = renderer.render(text, locale)
    assert second.cached and second.path == first.path and second.sha == first.sha
    assert renderer.renders == renders  # the worker was not asked again
    assert renderer.render(f"  {text}\n", locale).cached  # same text after whitespace clean-up


def test_cache_key_covers_text_voice_and_rate(tmp_path: Path, renderer: PromptRenderer) -> None:
    assert renderer.key("네", "ko-KR") != renderer.key("예", "ko-KR")
    assert renderer.key("hello", "en-US") != renderer.key("hello", "zh-CN")
    with PromptRenderer(tmp_path / "cache", rate_wpm=180) as faster:
        assert faster.key("hello", "en-US") != renderer.key("hello", "en-US")


def test_cache_survives_a_new_renderer_and_needs_no_worker(tmp_path: Path) -> None:
    with PromptRenderer(tmp_path / "cache") as first:
        made = first.render("Your payment is due on Friday.", "en-US")
    with PromptRenderer(tmp_path / "cache") as second:
        again = second.render("Your payment is due on Friday.", "en-US")
        assert again.cached and again.path == made.path
        assert second.worker_pid is None  # answered from the cache, no process started


def test_a_cache_hit_marks_the_prompt_used(renderer: PromptRenderer) -> None:
    """Retention (bot.voice.media.prune_prompts) counts from the last use, not from the render."""
    made = renderer.render("Thank you for your payment.", "en-US")
    long_ago = time.time() - 30 * 86_400
    os.utime(made.path, (long_ago, long_ago))
    assert renderer.render("Thank you for your payment.", "en-US").cached
    assert made.path.stat().st_mtime > time.time() - 60


def test_corrupt_cache_entry_is_rendered_again(renderer: PromptRenderer) -> None:
    made = renderer.render("A prompt that will be damaged.", "en-US")
    made.path.write_bytes(made.path.read_bytes()[:60])  # truncated on disk
    again = renderer.render("A prompt that will be damaged.", "en-US")
    assert not again.cached
    assert read_wav(again.path).duration_s == pytest.approx(made.duration_s, abs=0.1)


def test_writes_are_atomic_and_leave_nothing_behind(renderer: PromptRenderer) -> None:
    for n in range(3):
        renderer.render(f"Prompt number {n}.", "en-US")
    names = sorted(p.name for p in renderer.cache_dir.iterdir())
    assert len(names) == 3 and all(len(n) == 68 and n.endswith(".wav") for n in names)  # sha256 + ".wav"


def test_thread_safe_one_render_for_many_callers(renderer: PromptRenderer) -> None:
    renderer.warm_up()
    results: list[RenderedPrompt] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def call() -> None:
        try:
            start.wait()
            results.append(renderer.render("Everyone asks for this prompt at once.", "en-US"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.path for r in results}) == 1
    assert sum(not r.cached for r in results) == 1
    assert renderer.renders == 1


def test_text_is_validated(renderer: PromptRenderer) -> None:
    with pytest.raises(ValueError, match="empty"):
        renderer.render("   ", "en-US")
    with pytest.raises(ValueError, match="limit"):
        renderer.render("x" * 2001, "en-US")
    with pytest.raises(ValueError, match="voice"):
        renderer.render("bonjour", "fr-FR")


def test_hanging_worker_is_killed_and_replaced(tmp_path: Path, faulty: list[str]) -> None:
    with PromptRenderer(tmp_path / "cache", timeout_s=0.5, worker_argv=faulty) as renderer:
        first_pid = renderer.warm_up()
        started = time.monotonic()
        with pytest.raises(TtsError) as caught:
            renderer.render("hang forever", "ko-KR")
        elapsed = time.monotonic() - started
        assert "no answer within 0.5 s" in str(caught.value)
        assert "hang forever" not in str(caught.value)  # errors never quote the prompt
        assert elapsed < 5  # two attempts of 0.5 s each, plus restarts
        assert renderer.restarts == 2
        assert not _alive(first_pid)
        made = renderer.render("이미 냈어요", "ko-KR")  # a fresh worker serves the next prompt
        assert not made.cached and made.duration_s > 0.3
        assert renderer.worker_pid not in (None, first_pid)


def test_crashed_worker_is_restarted_and_the_render_retried(tmp_path: Path, faulty: list[str]) -> None:
    with PromptRenderer(tmp_path / "cache", timeout_s=5, worker_argv=faulty) as renderer:
        made = renderer.render("crash once", "en-US")
        assert not made.cached and renderer.restarts == 1
        with pytest.raises(TtsError, match="the worker exited"):
            renderer.render("crash always", "en-US")


@pytest.mark.parametrize(("text", "problem"), [("say nothing", "the worker wrote no file"),
                                               ("much too short", "implausible duration")])
def test_output_is_verified(tmp_path: Path, faulty: list[str], text: str, problem: str) -> None:
    with PromptRenderer(tmp_path / "cache", timeout_s=5, worker_argv=faulty) as renderer:
        with pytest.raises(TtsError, match=problem):
            renderer.render(text, "ko-KR")
        assert renderer.restarts == 2  # a bad file also costs the worker its life
        assert not list(renderer.cache_dir.glob("*.wav"))  # nothing unverified is ever cached


def test_worker_refusal_is_reported_without_restarting(tmp_path: Path, faulty: list[str]) -> None:
    with PromptRenderer(tmp_path / "cache", timeout_s=5, worker_argv=faulty) as renderer:
        with pytest.raises(TtsError, match="not installed"):
            renderer.render("no such voice", "ko-KR")
        assert renderer.restarts == 0


def test_close_stops_the_worker(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path / "cache")
    pid = renderer.warm_up()
    assert _alive(pid)
    renderer.close()
    assert not _alive(pid) and renderer.worker_pid is None


def test_unusable_cache_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TtsError, match="cannot be created"):
        PromptRenderer(blocker / "cache")


def test_renderer_from_settings(tmp_path: Path) -> None:
    from bot.config import load_settings

    settings = load_settings(speech_cache_dir=str(tmp_path / "prompts"), tts_timeout_seconds=3)
    with PromptRenderer.from_settings(settings) as renderer:
        assert renderer.cache_dir == tmp_path / "prompts" and renderer.timeout_s == 3.0
    with PromptRenderer.from_settings(settings, tmp_path / "elsewhere") as renderer:
        assert renderer.cache_dir == tmp_path / "elsewhere"


def test_the_call_flow_renderer_takes_the_configured_timeout(tmp_path: Path) -> None:
    from bot.config import load_settings
    from bot.voice import media

    settings = load_settings(media_dir=str(tmp_path / "media"), tts_timeout_seconds=4)
    try:
        renderer = media.prompt_renderer(settings)
        assert renderer.timeout_s == 4.0
        assert renderer.cache_dir == (tmp_path / "media" / "prompts").resolve()
        assert media.prompt_renderer(settings) is renderer  # one per process and directory
    finally:
        media.close_renderers()
