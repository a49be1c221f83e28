#!/usr/bin/env bash
# Installs what shoal's tests need beyond Go: Debian's python3-libtorrent
# (libtorrent 2.0, the reference peer of the interop tests) and opentracker
# (the reference UDP tracker of the interop tests and cmd/trackerbench).
# Idempotent.
set -euo pipefail

have_lt() { /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; }
have_ot() { command -v opentracker >/dev/null 2>&1; }

pkgs=()
have_lt || pkgs+=(python3-libtorrent)
have_ot || pkgs+=(opentracker)
if [ ${#pkgs[@]} -eq 0 ]; then
	exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo"
fi
echo "installing ${pkgs[*]} for the interop tests" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
have_lt || { echo "python3-libtorrent installed but not importable by /usr/bin/python3" >&2; exit 1; }
have_ot || { echo "opentracker installed but not on PATH" >&2; exit 1; }
