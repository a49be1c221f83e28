#!/usr/bin/env bash
# Installs what shoal's tests need beyond Go: Debian's python3-libtorrent
# (libtorrent 2.0, the reference peer of the interop tests). Idempotent.
set -euo pipefail

have_lt() { /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; }

if have_lt; then
	exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo"
fi
echo "installing python3-libtorrent for the interop tests" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-libtorrent >/dev/null
have_lt || { echo "python3-libtorrent installed but not importable by /usr/bin/python3" >&2; exit 1; }
