#!/usr/bin/env bash
# Installs what shoal's tests need beyond Go, all from Debian:
#   python3-libtorrent   libtorrent 2.0, the reference peer of the interop tests
#   opentracker          the reference UDP tracker (interop tests, cmd/trackerbench)
#   transmission-cli     Transmission 3.00, a v1-only client for the interop tests
#   transmission-daemon  (its transmission-daemon; the tests drive transmission-cli)
#   aria2                aria2c 1.36, another v1-only client for the interop tests
# Idempotent: installs only what is missing.
set -euo pipefail

have_lt() { /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; }
have() { command -v "$1" >/dev/null 2>&1; }

pkgs=()
have_lt || pkgs+=(python3-libtorrent)
have opentracker || pkgs+=(opentracker)
have transmission-cli || pkgs+=(transmission-cli)
have transmission-daemon || pkgs+=(transmission-daemon)
have aria2c || pkgs+=(aria2)
if [ ${#pkgs[@]} -eq 0 ]; then
	exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo"
fi
echo "installing ${pkgs[*]} for the interop tests" >&2
$sudo apt-get update -qq
# --no-install-recommends: transmission-daemon would otherwise pull in a
# desktop's worth of packages the tests never use.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
# The daemon package enables a system service; the tests start their own
# processes and want nothing listening that they did not start.
if have systemctl && [ -d /run/systemd/system ]; then
	$sudo systemctl disable --now transmission-daemon >/dev/null 2>&1 || true
fi
have_lt || { echo "python3-libtorrent installed but not importable by /usr/bin/python3" >&2; exit 1; }
for c in opentracker transmission-cli transmission-daemon aria2c; do
	have "$c" || { echo "$c installed but not on PATH" >&2; exit 1; }
done
