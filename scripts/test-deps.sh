#!/usr/bin/env bash
# Installs what shoal's tests need beyond Go: Debian's python3-libtorrent
# (libtorrent 2.0, the reference peer of the interop tests) and opentracker
# (the reference UDP tracker of the interop tests and cmd/trackerbench),
# and miniupnpd with its nftables backend and the nft tool (the router of
# cmd/shoal's port-mapping test, which builds the nftables chains that
# backend fills), and redis-server (the shared store of the tracker's Redis
# tests, each of which runs its own on a loopback port). Idempotent.
set -euo pipefail

have_lt() { /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; }
have_ot() { command -v opentracker >/dev/null 2>&1; }
have_rd() { command -v redis-server >/dev/null 2>&1; }
have_mu() { command -v miniupnpd >/dev/null 2>&1 && command -v nft >/dev/null 2>&1 && dpkg -s miniupnpd-nftables >/dev/null 2>&1; }

pkgs=()
have_lt || pkgs+=(python3-libtorrent)
have_ot || pkgs+=(opentracker)
have_mu || pkgs+=(miniupnpd miniupnpd-nftables nftables iproute2)
have_rd || pkgs+=(redis-server)
if [ ${#pkgs[@]} -eq 0 ]; then
	exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo"
fi
echo "installing ${pkgs[*]} for the interop tests" >&2
$sudo apt-get update -qq
# The test runs its own miniupnpd in a namespace; the package must not
# start one on the host.
echo "miniupnpd miniupnpd/start_daemon boolean false" | $sudo debconf-set-selections
# Nor must a system-wide redis-server start: the tests run their own.
if ! have_rd && [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
	$sudo chmod +x /usr/sbin/policy-rc.d
	trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
have_lt || { echo "python3-libtorrent installed but not importable by /usr/bin/python3" >&2; exit 1; }
have_ot || { echo "opentracker installed but not on PATH" >&2; exit 1; }
have_rd || { echo "redis-server installed but not on PATH" >&2; exit 1; }
have_mu || { echo "miniupnpd (nftables) or nft installed but not on PATH" >&2; exit 1; }
