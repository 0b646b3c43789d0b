#!/bin/sh
# Install frame-ingest from this checkout for the user who runs it (root or not), in a
# virtual environment of its own: Debian 12 / Raspberry Pi OS Bookworm refuse `pip install`
# into the system Python (PEP 668, "externally-managed-environment"), and a venv never
# needs sudo.
#
#   sh install.sh                 the venv ~/.local/share/frame-ingest-venv, and the link
#                                 ~/.local/bin/frame-ingest to its executable
#   sh install.sh --test DIR      a venv in DIR with the test extra, editable, no link
#                                 (what tests/setup-and-run.sh uses)
#
# Run it again after updating the checkout: it reuses the venv and reinstalls.
# FRAME_INGEST_PYTHON picks the interpreter (default: python3 on PATH).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
python=${FRAME_INGEST_PYTHON:-python3}
venv="$HOME/.local/share/frame-ingest-venv"
link="$HOME/.local/bin/frame-ingest"
target="$here"
editable=""
if [ "${1:-}" = "--test" ]; then
    venv=${2:?usage: sh install.sh --test DIR}
    link=""
    target="$here[test]"
    editable="-e"
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found: install Python 3.11 or later (sudo apt install python3)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/pip" ]; then
    # a venv without pip is what a failed attempt leaves; any other folder is not ours
    if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
        echo "error: $venv exists and is not a virtual environment: move it away" >&2
        exit 1
    fi
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! "$python" -m venv "$venv" >/dev/null 2>&1 || [ ! -x "$venv/bin/pip" ]; then
        rm -rf "$venv"
        echo "error: $python cannot create a virtual environment: install the python3-venv" \
             "package (sudo apt install python3-venv), then run this again" >&2
        exit 1
    fi
fi

# --prefer-binary: an older wheel rather than a newer source archive, which a Pi would
# have to compile (and cannot, for pi-heif on Bookworm)
pip_install() {
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --prefer-binary "$@"
}
if [ -n "$editable" ]; then
    pip_install -e "$target"
elif ! pip_install --only-binary=av "$target[video]" 2>/dev/null; then
    # no PyAV wheel for this machine (32-bit Raspberry Pi OS): everything but the decoder
    pip_install "$target"
    echo "note: no PyAV wheel for this machine: videos are taken and deduplicated by exact" \
         "copy only (docs/video.md)"
fi

if [ -n "$link" ]; then
    mkdir -p "$(dirname "$link")"
    ln -sfn "$venv/bin/frame-ingest" "$link"
    echo "installed $venv/bin/frame-ingest; call it as $link"
    case ":$PATH:" in
        *":$(dirname "$link"):"*) ;;
        *) echo "($(dirname "$link") is not on PATH in this shell: call frame-ingest by" \
                "that full path, or log in again: Debian's ~/.profile adds the folder" \
                "once it exists)" ;;
    esac
fi
