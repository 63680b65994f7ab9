#!/usr/bin/env bash
# Debian's chromium for the browser tests (tests/app/test_browser.py), installed only when missing.
# Playwright's own browser download cannot reach its servers on our machines, so the tests drive
# /usr/bin/chromium. Without root or sudo, or without apt, this says so and the browser tests skip.
set -uo pipefail
CHROMIUM="${ASTROEMBED_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: no apt-get here; install chromium yourself or the browser tests will skip" >&2
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "install_chromium: not root and no password-less sudo; the browser tests will skip" >&2
  exit 0
fi
echo "install_chromium: apt-get install chromium (for the browser tests)" >&2
$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
  || echo "install_chromium: apt-get failed; the browser tests will skip" >&2
exit 0
