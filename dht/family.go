package dht

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// Family says which address family a peer listener's address a takes,
// for its DHT node (BEP 32: an IPv6 node is a node of its own, with its
// own routing table): "udp4" or "udp6", and "IPv4" or "IPv6" for logs.
func Family(a net.Addr) (network, name string) {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil && !ap.Addr().Unmap().Is4() {
		return "udp6", "IPv6"
	}
	return "udp4", "IPv4"
}

// NewForListener runs the DHT node of the peer listener's address a on a
// UDP socket of a's family alone ("udp" would make a wildcard dual-stack
// and collide with the other family's node): a's port if free, as the
// DHT announces the peer port, else any. cfg.Conn and cfg.IPv6Only are
// set here, and cfg.Bootstrap keeps only the nodes a's family can reach
// (FamilyBootstrap). stateFile, if not nil, names cfg.StateFile by the
// socket's address ("" for none), as a table is kept per UDP port.
func NewForListener(ctx context.Context, a net.Addr, cfg Config, stateFile func(udp net.Addr) string) (*Node, error) {
	network, _ := Family(a)
	conn, err := net.ListenPacket(network, a.String())
	if err != nil {
		// The TCP port's UDP twin is taken: any port will do for the DHT.
		host, _, _ := net.SplitHostPort(a.String())
		if conn, err = net.ListenPacket(network, net.JoinHostPort(host, "0")); err != nil {
			return nil, fmt.Errorf("dht: %w", err)
		}
	}
	cfg.Conn = conn
	if stateFile != nil {
		cfg.StateFile = stateFile(conn.LocalAddr())
	}
	cfg.IPv6Only = network == "udp6"
	cfg.Bootstrap = FamilyBootstrap(cfg.Bootstrap, a)
	node, err := New(ctx, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return node, nil
}

// FamilyBootstrap drops the bootstrap nodes given as addresses of the
// other family than a's: the node could not reach them, and would warn
// that no bootstrap node answers. Names stay, resolved by the node, which
// keeps to its family. nil (the public routers) stays nil, and a list
// left empty means none.
func FamilyBootstrap(bootstrap []string, a net.Addr) []string {
	if bootstrap == nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return bootstrap
	}
	out := []string{}
	for _, hp := range bootstrap {
		if host, _, err := net.SplitHostPort(hp); err == nil {
			if b, err := netip.ParseAddr(host); err == nil && b.Unmap().Is4() != ap.Addr().Unmap().Is4() {
				continue
			}
		}
		out = append(out, hp)
	}
	return out
}
