#!/usr/bin/env bash
# The Debian packages RefineLab needs beside its Python ones: bubblewrap (the local sandbox that runs
# the validator's programs) and chromium (the HTML report's rendering checks). `make test` and `make demo`
# call this first. As root with apt-get it installs what is missing; otherwise it says what is missing,
# because without them sandboxed validation refuses to run and the tests that need them are skipped.
set -euo pipefail
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v chromium >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "WARNING: missing system packages: ${missing[*]} (Debian: sudo apt-get install ${missing[*]})." >&2
  echo "WARNING: without them sandboxed validation refuses to run and the tests that need them are skipped." >&2
fi
