#!/bin/sh
# Make sure a Chromium is installed for the alignment viewer's browser tests (tests/test_viewer.py drives it
# headless). Run by `make test`. Installs Debian's `chromium` with apt-get when running as root on a system that
# has apt-get; otherwise says how to install it. Never fails the build itself: without Chromium those tests skip,
# which under CI=true is a failure with this script's advice in the log.
set -u

for name in "${WHISPER_ALIGN_CHROMIUM:-}" chromium chromium-browser google-chrome; do
    if [ -n "$name" ] && command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tools/ensure_chromium.sh: installing chromium with apt-get (for the viewer's browser tests)"
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -q --no-install-recommends chromium >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; then
        exit 0
    fi
    echo "tools/ensure_chromium.sh: apt-get could not install chromium (see its errors above)" >&2
fi

cat >&2 <<'MSG'
tools/ensure_chromium.sh: Chromium is not installed, so the viewer's browser tests will skip (and fail under
CI=true). Install it, e.g. `sudo apt-get install --no-install-recommends chromium` on Debian, or point
WHISPER_ALIGN_CHROMIUM at a Chromium or Chrome binary.
MSG
exit 0
