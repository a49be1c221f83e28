#!/usr/bin/env bash
# Installs what shoal's tests need beyond Go, all from Debian:
#   python3-libtorrent   libtorrent 2.0, the reference peer of the interop tests
#   opentracker          the reference UDP tracker (interop tests, cmd/trackerbench)
#   miniupnpd, miniupnpd-nftables, nftables, iproute2
#                        the router of cmd/shoal's port-mapping test, which
#                        builds the nftables chains that backend fills
#   transmission-cli     Transmission 3.00, a v1-only client for the interop tests
#   transmission-daemon  (its daemon; the tests drive transmission-cli)
#   aria2                aria2c 1.36, another v1-only client for the interop tests
#   python3-transmissionrpc  Transmission's Python RPC client (0.11), which the
#                        RPC tests of daemon/rpc point at shoal's server
#   redis-server         the shared store of the tracker's Redis tests, each of
#                        which runs its own on a loopback port
#   chromium, fonts-dejavu-core
#                        the headless browser of daemon/webui's browser test
#                        (driven with chromedp), and a font for it to lay
#                        text out with
# Idempotent: installs only what is missing.
set -euo pipefail

have_lt() { /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; }
have_trpc() { /usr/bin/python3 -c 'import transmissionrpc' >/dev/null 2>&1; }
have_mu() { command -v miniupnpd >/dev/null 2>&1 && command -v nft >/dev/null 2>&1 && dpkg -s miniupnpd-nftables >/dev/null 2>&1; }
have() { command -v "$1" >/dev/null 2>&1; }

pkgs=()
have_lt || pkgs+=(python3-libtorrent)
have opentracker || pkgs+=(opentracker)
have_mu || pkgs+=(miniupnpd miniupnpd-nftables nftables iproute2)
have redis-server || pkgs+=(redis-server)
# Installed without recommends: transmission-daemon's would pull in a
# desktop's worth of packages the tests never use.
bare=()
have transmission-cli || bare+=(transmission-cli)
have transmission-daemon || bare+=(transmission-daemon)
have aria2c || bare+=(aria2)
have_trpc || bare+=(python3-transmissionrpc)
# Its recommends are a desktop's; headless needs only its dependencies
# and a font.
[ -x /usr/bin/chromium ] || bare+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || bare+=(fonts-dejavu-core)
if [ ${#pkgs[@]} -eq 0 ] && [ ${#bare[@]} -eq 0 ]; then
	exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo"
fi
echo "installing ${pkgs[*]} ${bare[*]} for the tests" >&2
$sudo apt-get update -qq
# The test runs its own miniupnpd in a namespace; the package must not
# start one on the host.
echo "miniupnpd miniupnpd/start_daemon boolean false" | $sudo debconf-set-selections
# Nor must any system-wide service start (redis-server,
# transmission-daemon): the tests run their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
	$sudo chmod +x /usr/sbin/policy-rc.d
	trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
if [ ${#pkgs[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
if [ ${#bare[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${bare[@]}" >/dev/null
fi
# The daemon package enables a system service; the tests start their own
# processes and want nothing listening that they did not start.
if have systemctl && [ -d /run/systemd/system ]; then
	$sudo systemctl disable --now transmission-daemon >/dev/null 2>&1 || true
fi
have_lt || { echo "python3-libtorrent installed but not importable by /usr/bin/python3" >&2; exit 1; }
have_trpc || { echo "python3-transmissionrpc installed but not importable by /usr/bin/python3" >&2; exit 1; }
have_mu || { echo "miniupnpd (nftables) or nft installed but not on PATH" >&2; exit 1; }
for c in opentracker redis-server transmission-cli transmission-daemon aria2c chromium; do
	have "$c" || { echo "$c installed but not on PATH" >&2; exit 1; }
done
