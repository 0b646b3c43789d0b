#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run all of it.
#   Debian packages: dovecot-imapd (the real IMAP server the IMAP tests start),
#   chromium (renders the quarantine review page), systemd (systemd-analyze verify),
#   python3-venv (the test environment below), photo wallpapers (the real photographs
#   bench/corpus.py cuts the accuracy test's corpus from; the same four packages as
#   bench/requirements.txt), libimage-exiftool-perl (exiftool reads the captions back).
#   Installed with sudo when not root; skipped when all present.
#   Python: this package with its [test] extra, editable, in a virtual environment of its
#   own (install.sh --test), never in the system Python:
#   $FRAME_INGEST_TEST_VENV, default ~/.cache/frame-ingest/test-venv.
# Extra arguments go to pytest (e.g. -k imap, -x; -n 2 runs it on two workers, as CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(dovecot-imapd chromium systemd fonts-dejavu-core python3-venv strace curl
          mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers-20.04
          lomiri-wallpapers-16.04
          libimage-exiftool-perl)
missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: the tests need these Debian packages: ${missing[*]}; install them as" \
                 "root (apt-get install ${missing[*]}), then run this again" >&2
            exit 1
        fi
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv=${FRAME_INGEST_TEST_VENV:-$HOME/.cache/frame-ingest/test-venv}
sh install.sh --test "$venv"
exec "$venv/bin/python" -m pytest "$@"
