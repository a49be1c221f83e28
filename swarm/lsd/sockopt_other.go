//go:build !linux

package lsd

import "net"

// onlyJoinedGroups does nothing where sockets get only the groups they
// joined already.
func onlyJoinedGroups(net.PacketConn, bool) error { return nil }
