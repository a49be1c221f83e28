// Package trsettings is the part of a Transmission 3.00 settings.json that
// every Transmission the project starts shares (tests, benchmarks): one
// that talks to nobody but the peers it is given, on loopback. Transmission
// has no flags for most of these, and its defaults would reach the DHT,
// LPD multicast, the router and a blocklist server.
package trsettings

// Quiet returns the settings of a Transmission whose peer port is
// peerPort, bound to loopback, with no DHT, LPD, PEX, uTP, port mapping
// or blocklist, no speed limits, no watch or incomplete folder, and every
// added torrent started. RPC, ratio limits and logging are the caller's to
// add: they differ between a transmission-cli peer and a daemon.
func Quiet(peerPort int) map[string]any {
	return map[string]any{
		"dht-enabled":                  false,
		"lpd-enabled":                  false,
		"utp-enabled":                  false,
		"pex-enabled":                  false,
		"port-forwarding-enabled":      false,
		"peer-port":                    peerPort,
		"peer-port-random-on-start":    false,
		"bind-address-ipv4":            "127.0.0.1",
		"bind-address-ipv6":            "::1",
		"blocklist-enabled":            false,
		"speed-limit-down-enabled":     false,
		"speed-limit-up-enabled":       false,
		"alt-speed-enabled":            false,
		"incomplete-dir-enabled":       false,
		"watch-dir-enabled":            false,
		"start-added-torrents":         true,
		"trash-original-torrent-files": false,
	}
}

// LoopbackRPC returns the settings of a Transmission RPC on 127.0.0.1 at
// rpcPort, answering loopback clients only, without auth. The host-name
// allow-list is off: a client names the address, which Transmission
// allows anyway, and a proxy in front may forward another Host.
func LoopbackRPC(rpcPort int) map[string]any {
	return map[string]any{
		"rpc-enabled":                 true,
		"rpc-bind-address":            "127.0.0.1",
		"rpc-port":                    rpcPort,
		"rpc-authentication-required": false,
		"rpc-whitelist-enabled":       true,
		"rpc-whitelist":               "127.0.0.1",
		"rpc-host-whitelist-enabled":  false,
	}
}
