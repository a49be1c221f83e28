package lsd

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// onlyJoinedGroups turns IP_MULTICAST_ALL off: by default Linux hands a
// socket bound to the wildcard the datagrams of every group any socket
// on the host joined, on any interface.
func onlyJoinedGroups(pc net.PacketConn, v6 bool) error {
	sc, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = sc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
		}
	})
	if err != nil {
		return err
	}
	if serr != nil && v6 && serr == unix.ENOPROTOOPT {
		// Kernels before 4.20 lack it for IPv6; the interface and
		// destination checks in handle still hold.
		return nil
	}
	if serr != nil {
		return fmt.Errorf("setsockopt: %w", serr)
	}
	return nil
}
