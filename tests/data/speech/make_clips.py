"""The held-out Korean speech set: replies nobody tuned the grammars on, as phone recordings.

    python tests/data/speech/make_clips.py [--check]

Writes ``heldout/*.wav`` (8 kHz G.711 mu-law) and ``heldout.csv`` (the manifest of
``bench/voice_bench.py --clips``: file, intent, expect, promise_date, and the text) next to
this script.  ``--check`` regenerates into a temporary folder and compares, byte for
byte, with the committed files (exit status 1 on a difference).

How a clip is made, deterministically (espeak-ng 1.51; the same input gives the same
file): the reply is spoken by one of nine espeak-ng Korean voices (variants, speeds and
pitches unlike the tuning clips of bench/voice_bench.py), band-passed to 300-3400 Hz (a
telephone channel), resampled to 8 kHz, mixed with white noise at 18-30 dB below the
speech (seeded by the clip's name) and encoded as mu-law.

The replies were written apart from the grammars (bot/speech/grammars.py), in the ways
people answer a collection call: polite and plain speech, fillers (음, 어, 저기요),
longer sentences, indirect forms; ``other`` rows are answers about something else,
for which the right behaviour is to ask again.  Never tune phrases or thresholds on
this set: tune on the replies of bench/voice_bench.py and report on these.
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parents[2]))

from bench.voice_bench import band_pass, with_noise  # noqa: E402
from bot.speech.audio import read_wav, telephony, write_wav  # noqa: E402

# (text, intent meant, the kind of question it answers)
REPLIES: tuple[tuple[str, str, str], ...] = (
    # yes / no after the right-party check
    ("음 네 제가 맞아요", "affirm", "yes_no"),
    ("네 그런데요", "affirm", "yes_no"),
    ("어 맞아 나야", "affirm", "yes_no"),
    ("예 제가 본인이에요", "affirm", "yes_no"),
    ("네네 맞습니다", "affirm", "yes_no"),
    ("그렇습니다", "affirm", "yes_no"),
    ("저기요 네 맞는데요", "affirm", "yes_no"),
    ("응 맞아", "affirm", "yes_no"),
    ("아니요 아닌데요", "deny", "yes_no"),
    ("음 아니에요", "deny", "yes_no"),
    ("아니 그거 아니야", "deny", "yes_no"),
    ("아뇨 그건 틀린데요", "deny", "yes_no"),
    ("전혀 아닙니다", "deny", "yes_no"),
    ("그런 분 여기 안 사세요", "wrong_number", "yes_no"),
    ("번호를 잘못 아신 것 같아요", "wrong_number", "yes_no"),
    ("여기는 그런 사람 없는데요", "wrong_number", "yes_no"),
    ("저는 그분 모르는 사람이에요", "wrong_number", "yes_no"),
    ("잘못 걸린 전화 같은데요", "wrong_number", "yes_no"),
    ("지금은 통화가 어려워요 이따가 다시 걸어 주세요", "callback_request", "yes_no"),
    ("어 지금 운전하고 있어서요", "callback_request", "yes_no"),
    ("나중에 전화해 주실래요", "callback_request", "yes_no"),
    ("회의 들어가야 해서 다음에 통화해요", "callback_request", "yes_no"),
    ("저기요 지금 바쁘니까 오후에 다시 해 주세요", "callback_request", "yes_no"),
    # "when can you pay?"
    ("음 내일까지 보낼게요", "promise_to_pay", "date"),
    ("이번 주 금요일에 꼭 입금하겠습니다", "promise_to_pay", "date"),
    ("다음 주 월요일에 갚겠습니다", "promise_to_pay", "date"),
    ("월급 받으면 이십오일에 낼게요", "promise_to_pay", "date"),
    ("모레쯤 넣을게요", "promise_to_pay", "date"),
    ("오늘 저녁에 바로 보내 드릴게요", "promise_to_pay", "date"),
    ("주말에 처리할게요", "promise_to_pay", "date"),
    ("수요일에 입금할 수 있어요", "promise_to_pay", "date"),
    ("지금은 낼 돈이 하나도 없어요", "hardship", "date"),
    ("벌써 어제 보냈는데요", "paid", "date"),
    ("아직 언제 될지 모르겠어요", "other", "date"),
    # an open question about the payment
    ("저 그거 이미 다 냈는데요", "paid", "intent"),
    ("지난달에 전부 갚았습니다", "paid", "intent"),
    ("어제 계좌로 이체했어요", "paid", "intent"),
    ("음 벌써 송금 끝났어요", "paid", "intent"),
    ("앞으로 전화하지 마세요", "opt_out", "intent"),
    ("이 번호로 연락하지 말아 주세요", "opt_out", "intent"),
    ("저기요 그만 좀 전화하세요", "opt_out", "intent"),
    ("더는 연락 받고 싶지 않아요", "opt_out", "intent"),
    ("문자도 전화도 하지 마세요", "opt_out", "intent"),
    ("저는 그런 대출 받은 적이 없는데요", "dispute", "intent"),
    ("청구 금액이 잘못된 것 같아요", "dispute", "intent"),
    ("이거 사기 아니에요", "dispute", "intent"),
    ("제가 빌린 돈이 아닙니다", "dispute", "intent"),
    ("요즘 일이 없어서 갚기가 힘들어요", "hardship", "intent"),
    ("회사에서 잘려서 돈이 없어요", "hardship", "intent"),
    ("아파서 병원에 입원해 있어요", "hardship", "intent"),
    ("형편이 너무 안 좋아서요", "hardship", "intent"),
    ("다음 주에 갚을게요", "promise_to_pay", "intent"),
    ("음 금요일까지는 낼 수 있어요", "promise_to_pay", "intent"),
    # about something else: the right answer is to ask again
    ("주차장이 어디에 있나요", "other", "intent"),
    ("내일 비가 온대요", "other", "intent"),
    ("라면 끓이고 있었어요", "other", "date"),
    ("어제 축구 경기 보셨어요", "other", "yes_no"),
    ("이 노래 제목이 뭐예요", "other", "yes_no"),
    ("아이들이 벌써 학교에 갔어요", "other", "intent"),
    ("배달 음식 시켰는데 아직 안 왔어요", "other", "date"),
    ("엘리베이터가 고장 났어요", "other", "yes_no"),
    ("음 잠깐만요 물 좀 마실게요", "other", "intent"),
    ("창문 좀 닫아 줄래", "other", "date"),
    ("고양이 밥 줘야 돼요", "other", "yes_no"),
    ("서울역 가는 버스 몇 번이에요", "other", "intent"),
)

# (espeak-ng voice, words a minute, pitch 0-99, noise level below the speech in dB); each
# reply is spoken in CLIPS_PER_REPLY of them, chosen by its position.
VOICES: tuple[tuple[str, int, int, int], ...] = (
    ("ko+f2", 145, 65, 24), ("ko+m3", 175, 45, 20), ("ko+f4", 125, 80, 28),
    ("ko+m5", 155, 35, 18), ("ko+f1", 185, 55, 26), ("ko", 135, 75, 22),
    ("ko+m2", 165, 60, 30), ("ko+f3", 150, 85, 20), ("ko+m4", 195, 40, 25),
)
CLIPS_PER_REPLY = 3
BAND_HZ = (300.0, 3400.0)


def make_clip(text: str, voice: str, speed: int, pitch: int, below_db: int, target: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="heldout-") as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                       check=True, capture_output=True, timeout=30)
        pcm = read_wav(raw)
    phone = telephony(band_pass(pcm, *BAND_HZ))
    return write_wav(target, with_noise(phone, below_db, zlib.crc32(target.name.encode())), "mulaw")


def generate(folder: Path) -> int:
    """Every clip into ``folder/heldout`` and the manifest ``folder/heldout.csv``; returns the number of clips."""
    clips = folder / "heldout"
    if clips.exists():
        shutil.rmtree(clips)
    clips.mkdir(parents=True)
    rows = []
    for n, (text, intent, expect) in enumerate(REPLIES):
        for k in range(CLIPS_PER_REPLY):
            voice, speed, pitch, below_db = VOICES[(n * CLIPS_PER_REPLY + k) % len(VOICES)]
            name = f"r{n:02d}-{k}.wav"
            make_clip(text, voice, speed, pitch, below_db, clips / name)
            rows.append({"file": f"heldout/{name}", "intent": intent, "expect": expect, "promise_date": "",
                         "text": text, "voice": f"{voice} -s {speed} -p {pitch}, noise -{below_db} dB"})
    with (folder / "heldout.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="regenerate elsewhere and compare with the committed files")
    args = parser.parse_args(argv)
    if not args.check:
        print(f"{generate(ROOT)} clips in {ROOT / 'heldout'}")
        return 0
    with tempfile.TemporaryDirectory(prefix="heldout-check-") as tmp:
        count = generate(Path(tmp))
        names = [p.name for p in sorted((Path(tmp) / "heldout").iterdir())]
        _, mismatch, errors = filecmp.cmpfiles(Path(tmp) / "heldout", ROOT / "heldout", names, shallow=False)
        same_manifest = filecmp.cmp(Path(tmp) / "heldout.csv", ROOT / "heldout.csv", shallow=False)
    if mismatch or errors or not same_manifest:
        print(f"differs from the committed set: {len(mismatch) + len(errors)} of {count} clips"
              + ("" if same_manifest else ", the manifest"), file=sys.stderr)
        return 1
    print(f"{count} clips identical to the committed set")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
