#!/usr/bin/env bash
# One command to set up and run the bot on a fresh Debian machine with Python 3.11.
#
#   ./bootstrap.sh demo          set up, then run the demo on the embedded default (SQLite)
#   ./bootstrap.sh test [ARGS]   set up, then run the whole test suite on SQLite and PostgreSQL
#   ./bootstrap.sh setup         only set up (.venv with the bot and its test tools)
#
# It installs what it needs: Debian packages with apt-get (as root, or through sudo),
# a virtual environment in .venv with the bot and its dependencies from PyPI, and for
# the tests a PostgreSQL server at 127.0.0.1:5432 when none is running there.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) to run: $*" >&2; exit 2; fi
}

APT_UPDATED=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    if [ $APT_UPDATED = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$candidate"; return
        fi
    done
    apt_install python3 python3-venv python3-dev
    echo python3
}

setup_python() {
    local py; py=$(pick_python)
    if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then apt_install python3-venv; fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtual environment in .venv"
        "$py" -m venv "$VENV"
    fi
    local stamp="$VENV/.bot-installed" want
    want=$(cat pyproject.toml | sha256sum | cut -c1-16)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "installing the bot and its dependencies into .venv"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v '^WARNING: Location' || true
        "$VENV/bin/python" -c 'import bot.cli' # fail here, not later, if the install did not work
        echo "$want" > "$stamp"
    fi
}

# espeak-ng: the speech synthesiser pyttsx3 drives (voice prompts, test clips).
# chromium + CJK fonts: the console's browser tests (Playwright drives Debian's Chromium).
setup_system() {
    apt_install espeak-ng
    if [ "${1:-}" = test ]; then apt_install chromium fonts-noto-cjk; fi
}

pg_ready() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }

setup_postgres() {
    # Tests may point elsewhere with BOT_TEST_PG_URL; then nothing to do here.
    if [ -n "${BOT_TEST_PG_URL:-}" ] || [ "${BOT_TEST_DATABASES:-sqlite,postgresql}" = sqlite ]; then return; fi
    if pg_ready; then return; fi
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        apt_install postgresql
    fi
    local version; version=$(ls /etc/postgresql | sort -V | tail -n1)
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q '^host *test *all *127.0.0.1/32 *trust' "$hba"; then
        say "allowing trust authentication for database test on 127.0.0.1 (tests only)"
        as_root sed -i '1i host test all 127.0.0.1/32 trust\nhost test all ::1/128 trust' "$hba"
    fi
    say "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
        || as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
    pg_ready || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 2; }
    as_root su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='test'\"" | grep -q 1 \
        || as_root su postgres -c "createdb test"
}

cmd=${1:-help}
shift || true
case "$cmd" in
    setup)
        setup_system test
        setup_python
        ;;
    demo)
        setup_system
        setup_python
        say "running the demo (SQLite in ./demo)"
        exec "$VENV/bin/bot" demo "$@"
        ;;
    test)
        setup_system test
        setup_python
        setup_postgres
        say "running the test suite"
        set +e
        "$VENV/bin/python" -m pytest "$@"
        status=$?
        set -e
        # pytest exits 5 when it collected no test: that is a failure here.
        [ $status = 5 ] && { echo "no tests ran" >&2; exit 1; }
        exit $status
        ;;
    *)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        [ "$cmd" = help ] || [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2
        ;;
esac
