package lsd

// The multicast sockets, one per address family: bound to the LSD port,
// joined to the group on each interface in scope, sending from each
// interface's own address and telling on what interface and to what
// address a datagram came. lsd.go runs the service over them.

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// conn is one family's socket: bound to the LSD port, joined to the
// group on each interface in scope.
type conn struct {
	group netip.AddrPort
	pc    net.PacketConn
	p4    *ipv4.PacketConn
	p6    *ipv6.PacketConn
	ifs   []*net.Interface
	srcs  []netip.Addr // the source address on each of ifs
	inIfs map[int]bool
}

// openConn opens the socket of group's family and joins the group on
// each of ifs; an interface that cannot join is left out (joined lists
// those that did). A nil conn with no error means none could.
func openConn(group netip.AddrPort, ifs []Iface) (c *conn, joined []Iface, err error) {
	network := "udp4"
	if group.Addr().Is6() {
		network = "udp6"
	}
	// Listening on a group address binds the port on the wildcard with
	// SO_REUSEADDR, so several clients on one host share it.
	pc, err := net.ListenPacket(network, group.String())
	if err != nil {
		return nil, nil, fmt.Errorf("lsd: listen %s: %w", group, err)
	}
	c = &conn{group: group, pc: pc, inIfs: make(map[int]bool)}
	fail := func(what string, err error) (*conn, []Iface, error) {
		pc.Close()
		return nil, nil, fmt.Errorf("lsd: %s on %s: %w", what, group, err)
	}
	if err := onlyJoinedGroups(pc, group.Addr().Is6()); err != nil {
		return fail("IP_MULTICAST_ALL", err)
	}
	g := &net.UDPAddr{IP: group.Addr().AsSlice()}
	if group.Addr().Is4() {
		c.p4 = ipv4.NewPacketConn(pc)
		if err := c.p4.SetMulticastTTL(1); err != nil {
			return fail("multicast TTL", err)
		}
		// On, so clients on one host hear each other; the cookie skips
		// our own.
		if err := c.p4.SetMulticastLoopback(true); err != nil {
			return fail("multicast loopback", err)
		}
		if err := c.p4.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
			return fail("control messages", err)
		}
	} else {
		c.p6 = ipv6.NewPacketConn(pc)
		if err := c.p6.SetMulticastHopLimit(1); err != nil {
			return fail("multicast hop limit", err)
		}
		if err := c.p6.SetMulticastLoopback(true); err != nil {
			return fail("multicast loopback", err)
		}
		if err := c.p6.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true); err != nil {
			return fail("control messages", err)
		}
	}
	for _, i := range ifs {
		ni, err := net.InterfaceByIndex(i.Index)
		if err == nil {
			if c.p4 != nil {
				err = c.p4.JoinGroup(ni, g)
			} else {
				err = c.p6.JoinGroup(ni, g)
			}
		}
		if err != nil {
			continue
		}
		c.ifs = append(c.ifs, ni)
		c.srcs = append(c.srcs, i.Source)
		c.inIfs[ni.Index] = true
		joined = append(joined, i)
	}
	if len(c.ifs) == 0 {
		pc.Close()
		return nil, nil, nil
	}
	return c, joined, nil
}

// send multicasts b on the i'th interface, from its source address.
func (c *conn) send(i int, b []byte) error {
	ifi, src := c.ifs[i], c.srcs[i].AsSlice()
	dst := &net.UDPAddr{IP: c.group.Addr().AsSlice(), Port: int(c.group.Port())}
	var err error
	if c.p4 != nil {
		if err = c.p4.SetMulticastInterface(ifi); err == nil {
			_, err = c.p4.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifi.Index, Src: src}, dst)
		}
	} else {
		if err = c.p6.SetMulticastInterface(ifi); err == nil {
			_, err = c.p6.WriteTo(b, &ipv6.ControlMessage{IfIndex: ifi.Index, Src: src}, dst)
		}
	}
	return err
}

// read reads a datagram into b: its length, the interface it came in on,
// the address it was sent to and its source.
func (c *conn) read(b []byte) (n, ifIndex int, dst netip.Addr, src netip.AddrPort, err error) {
	var from net.Addr
	if c.p4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, from, err = c.p4.ReadFrom(b)
		if cm != nil {
			ifIndex = cm.IfIndex
			dst, _ = netip.AddrFromSlice(cm.Dst)
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, from, err = c.p6.ReadFrom(b)
		if cm != nil {
			ifIndex = cm.IfIndex
			dst, _ = netip.AddrFromSlice(cm.Dst)
		}
	}
	if ua, ok := from.(*net.UDPAddr); ok {
		src = ua.AddrPort()
	}
	return n, ifIndex, dst.Unmap(), netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), err
}

// ifName names the joined interface whose index is idx.
func (c *conn) ifName(idx int) string {
	for _, ifi := range c.ifs {
		if ifi.Index == idx {
			return ifi.Name
		}
	}
	return ""
}
