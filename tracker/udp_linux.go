package tracker

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpBatch is how many datagrams one recvmmsg or sendmmsg call moves. Under
// load one system call then serves dozens of announces; when idle a batch
// holds whatever has arrived, so latency does not wait for it to fill.
const udpBatch = 32

// mmsghdr is struct mmsghdr: a msghdr and the byte count the kernel fills
// in, padded to the alignment of a pointer.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// udpBatchBufs is a socket's batch memory, allocated once. The msghdrs
// point into it, which is safe because the Go heap does not move.
type udpBatchBufs struct {
	rhdr  [udpBatch]mmsghdr
	riov  [udpBatch]unix.Iovec
	names [udpBatch]unix.RawSockaddrInet6 // large enough for IPv4 too
	shdr  [udpBatch]mmsghdr
	siov  [udpBatch]unix.Iovec
	in    [udpBatch][udpMaxPacket + 1]byte
	out   [udpBatch][udpMaxReply]byte
}

func udpSockets(n int) int {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	return n
}

// reusePort sets SO_REUSEPORT, which lets several sockets bind one port and
// has the kernel hash each client to one of them.
func reusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// serve answers c's datagrams in batches: one recvmmsg takes every
// datagram waiting (up to udpBatch), they are answered in turn, and one
// sendmmsg sends the answers. The closures handed to the poller are made
// once, so a batch allocates nothing.
//
// Both calls go through RawSyscall, without telling the scheduler: with
// MSG_DONTWAIT they never sleep (an empty socket is EAGAIN, and the wait
// is the poller's), so there is nothing for it to do meanwhile. Through
// Syscall, each call woke the runtime's sysmon thread from its idle sleep
// to watch for a blocked P, and the steady stream of calls kept it polling
// every 20 µs: 16% of the tracker's CPU under trackerbench's UDP load
// (perf), a context switch per wake, and about 1 µs per announce.
func (w *udpWorker) serve(c *net.UDPConn, closing *atomic.Bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return w.serveSimple(c, closing)
	}
	b := new(udpBatchBufs)
	for i := range b.rhdr {
		b.riov[i].Base = &b.in[i][0]
		b.riov[i].SetLen(len(b.in[i]))
		h := &b.rhdr[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.riov[i]
		h.SetIovlen(1)
		b.shdr[i].hdr.Iov = &b.siov[i]
		b.shdr[i].hdr.SetIovlen(1)
	}
	var (
		got         int
		rerr        syscall.Errno
		sent, total int
	)
	recv := func(fd uintptr) bool {
		for i := range b.rhdr {
			b.rhdr[i].hdr.Namelen = unix.SizeofSockaddrInet6
			b.rhdr[i].hdr.Flags = 0
		}
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rhdr[0])), udpBatch, unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		got, rerr = int(r), e
		return true
	}
	send := func(fd uintptr) bool {
		for sent < total {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.shdr[sent])), uintptr(total-sent), unix.MSG_DONTWAIT, 0, 0)
			switch e {
			case 0:
				sent += int(r)
			case unix.EAGAIN:
				return false
			case unix.EINTR:
			default:
				// The first remaining answer failed (a firewall's EPERM, an
				// unreachable address): skip it, send the rest.
				w.cnt.sendErrors.Add(1)
				sent++
			}
		}
		return true
	}
	for {
		if err := rc.Read(recv); err != nil {
			if closing.Load() {
				return nil
			}
			return err
		}
		if rerr != 0 {
			if rerr != unix.EINTR {
				w.readFailed(rerr)
			}
			continue
		}
		total = 0
		for i := range got {
			from, ok := rawAddrPort(&b.names[i])
			if !ok {
				continue
			}
			r := w.handle(b.in[i][:b.rhdr[i].n], from, b.out[total][:0])
			if r == nil {
				continue
			}
			b.siov[total].Base = &b.out[total][0]
			b.siov[total].SetLen(len(r))
			sh := &b.shdr[total].hdr
			sh.Name = b.rhdr[i].hdr.Name
			sh.Namelen = b.rhdr[i].hdr.Namelen
			total++
		}
		if total == 0 {
			continue
		}
		sent = 0
		if err := rc.Write(send); err != nil {
			if closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// rawAddrPort decodes the sender address recvmmsg stored in sa.
func rawAddrPort(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1])), true
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1])), true
	}
	return netip.AddrPort{}, false
}
