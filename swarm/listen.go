package swarm

// Listening on one or both address families (issue 14, dual stack).

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// portRetries bounds how often a dual-stack listen on port 0 tries again
// when the IPv6 socket's free port is taken on IPv4.
const portRetries = 20

// listenFamilies opens the peer listeners for addr. A host given as an
// address keeps to its family: "0.0.0.0" is IPv4 only, "[::]" IPv6 only
// (Go's "tcp" would make both of them dual-stack). An empty host, as in
// ":6881", means both families on the same port, each on a socket of its
// own: a single [::] socket with IPV6_V6ONLY off fails to take IPv4 where
// the system forces v6only (OpenBSD, Linux with bindv6only and software
// that honours it), and shows IPv4 peers as ::ffff: mapped addresses;
// two sockets work everywhere, and Go sets IPV6_V6ONLY on "tcp6" so they
// do not collide. Where IPv6 is unavailable the IPv4 socket serves alone.
// A host name listens as Go resolves it.
func listenFamilies(addr string) ([]net.Listener, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host != "" {
		network := "tcp"
		if a, err := netip.ParseAddr(host); err == nil {
			network = "tcp6"
			if a.Unmap().Is4() {
				network = "tcp4"
			}
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		return []net.Listener{ln}, nil
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", portStr)
	}
	for try := 0; ; try++ {
		ln6, err := net.Listen("tcp6", net.JoinHostPort("::", strconv.Itoa(port)))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, err
			}
			// No IPv6 on this host: IPv4 alone.
			ln4, err4 := net.Listen("tcp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
			if err4 != nil {
				return nil, err4
			}
			return []net.Listener{ln4}, nil
		}
		p := ln6.Addr().(*net.TCPAddr).Port
		ln4, err := net.Listen("tcp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(p)))
		if err == nil {
			// IPv4 first: it is what "listening:" showed before dual
			// stack, and what Addr returns.
			return []net.Listener{ln4, ln6}, nil
		}
		ln6.Close()
		if port != 0 || !errors.Is(err, syscall.EADDRINUSE) || try+1 >= portRetries {
			return nil, err
		}
	}
}

// Addrs returns every address the client listens on, IPv4 first; a
// dual-stack client has one per family, on the same port.
func (c *Client) Addrs() []net.Addr {
	out := make([]net.Addr, len(c.lns))
	for i, ln := range c.lns {
		out[i] = ln.Addr()
	}
	return out
}

// port returns the port peers reach us on, the same for every listener.
func (c *Client) port() uint16 {
	if a, ok := c.lns[0].Addr().(*net.TCPAddr); ok {
		return uint16(a.Port)
	}
	return 0
}

// families records which address families the listeners take, so that
// the client deals only with peers it can be reached by in turn.
func (c *Client) setFamilies() {
	for _, ln := range c.lns {
		a, ok := ln.Addr().(*net.TCPAddr)
		if !ok {
			continue
		}
		if a.AddrPort().Addr().Unmap().Is4() {
			c.v4 = true
		} else {
			c.v6 = true
		}
	}
}

// Reaches reports whether the client listens on addr's family: one that
// listens on IPv4 alone (--listen 127.0.0.1:PORT) neither dials nor
// announces to IPv6 peers, nor the other way round.
func (c *Client) Reaches(addr netip.Addr) bool {
	if addr.Unmap().Is4() {
		return c.v4
	}
	return c.v6
}
