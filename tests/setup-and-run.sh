#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run all of it.
#   Debian packages: dovecot-imapd (the real IMAP server the IMAP tests start),
#   chromium (renders the quarantine review page), systemd (systemd-analyze verify),
#   photo wallpapers (the real photographs bench/corpus.py cuts the accuracy test's
#   corpus from; the same four packages as bench/requirements.txt).
#   Python: this package with its [test] extra, editable.
# Extra arguments go to pytest (e.g. -k imap, -x).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    dovecot-imapd chromium systemd fonts-dejavu-core strace \
    mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers-20.04 \
    lomiri-wallpapers-16.04 >/dev/null

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
exec python3 -m pytest "$@"
