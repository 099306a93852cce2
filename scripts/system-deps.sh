#!/usr/bin/env bash
# Installs the system programs the integration tests use, if they are missing:
#   - a PostgreSQL server (Debian package `postgresql`) for the cross-database tests
#   - Chromium (Debian packages `chromium`, `chromium-driver`) for the browser tests
#   - poppler-utils (pdftotext, pdftoppm) to read and render the statement PDFs in tests
# Best effort: without root or apt the tests that need them skip with a clear message.
set -u
have_pg() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }
have_chromium() { command -v chromium >/dev/null 2>&1; }
have_poppler() { command -v pdftoppm >/dev/null 2>&1; }
missing=()
have_pg || missing+=(postgresql)
have_chromium || missing+=(chromium chromium-driver fonts-dejavu-core)
have_poppler || missing+=(poppler-utils)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: cannot install ${missing[*]} (need root and apt-get); dependent tests will skip" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || echo "system-deps: apt-get install ${missing[*]} failed; dependent tests will skip" >&2
exit 0
