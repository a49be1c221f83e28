package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// BEP 15 constants the load generator needs.
const (
	udpProtocolID  = 0x41727101980
	actionConnect  = 0
	actionAnnounce = 1
	actionError    = 3
	// idRefresh is when a worker asks for a new connection ID: trackers
	// accept one for at least a minute.
	idRefresh = 50 * time.Second
)

// udpAnnounce builds a periodic BEP 15 announce (event none, nothing
// uploaded or downloaded), the UDP twin of the load's HTTP announces. The
// connection and transaction IDs are filled in when it is sent.
func udpAnnounce(h, id [20]byte, port uint16, left uint64, numWant, key uint32) []byte {
	b := make([]byte, 16, 98)
	binary.BigEndian.PutUint32(b[8:], actionAnnounce)
	b = append(append(b, h[:]...), id[:]...)
	b = binary.BigEndian.AppendUint64(b, 0) // downloaded
	b = binary.BigEndian.AppendUint64(b, left)
	b = binary.BigEndian.AppendUint64(b, 0) // uploaded
	b = binary.BigEndian.AppendUint32(b, 0) // event none
	b = binary.BigEndian.AppendUint32(b, 0) // ip: the sender's
	b = binary.BigEndian.AppendUint32(b, key)
	b = binary.BigEndian.AppendUint32(b, numWant)
	return binary.BigEndian.AppendUint16(b, port)
}

// udpConnectID does a connect exchange on c, retrying a lost one.
func udpConnectID(c *net.UDPConn) (uint64, error) {
	req := make([]byte, 16)
	binary.BigEndian.PutUint64(req, udpProtocolID)
	tx := rand.Uint32()
	binary.BigEndian.PutUint32(req[12:], tx)
	buf := make([]byte, 2048)
	for range 5 {
		if _, err := c.Write(req); err != nil {
			return 0, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return 0, err
			}
			if n >= 16 && binary.BigEndian.Uint32(buf) == actionConnect && binary.BigEndian.Uint32(buf[4:]) == tx {
				return binary.BigEndian.Uint64(buf[8:]), nil
			}
		}
	}
	return 0, errors.New("no answer to connect")
}

// driveUDP keeps inflight announces outstanding for d, spread over
// sockets sockets, each worker sending its next announce (picked with next)
// as soon as an answer frees a slot of its window. An announce unanswered
// for a second counts as an error and its slot is reused.
func driveUDP(addrs []string, sockets, inflight int, d time.Duration, next func(w int) []byte) result {
	var (
		mu    sync.Mutex
		total result
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	sockets = max(1, min(sockets, inflight))
	start := time.Now()
	for w := range sockets {
		window := inflight / sockets
		if w < inflight%sockets {
			window++
		}
		wg.Go(func() {
			res := udpWorker(addrs[w%len(addrs)], w, window, &stop, next)
			mu.Lock()
			total.requests += res.requests
			total.errs += res.errs
			total.dials += res.dials
			total.lat = append(total.lat, res.lat...)
			if total.firstErr == nil {
				total.firstErr = res.firstErr
			}
			mu.Unlock()
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	total.elapsed = time.Since(start)
	return total
}

type udpSlot struct {
	tx      uint32
	sent    time.Time
	connect bool // this slot's outstanding request is a connect
	pkt     []byte
}

func udpWorker(addr string, w, window int, stop *atomic.Bool, next func(w int) []byte) result {
	var res result
	fail := func(err error) {
		res.errs++
		if res.firstErr == nil {
			res.firstErr = err
		}
	}
	nc, err := net.Dial("udp", addr)
	if err != nil {
		fail(err)
		return res
	}
	c := nc.(*net.UDPConn)
	defer c.Close()
	c.SetReadBuffer(1 << 20)
	id, err := udpConnectID(c)
	if err != nil {
		fail(fmt.Errorf("connect: %w", err))
		return res
	}
	res.dials++
	idAt := time.Now()
	refreshing := false
	slots := make([]udpSlot, window)
	gen := uint32(0)
	send := func(s int) {
		sl := &slots[s]
		gen++
		sl.tx = uint32(s) | gen<<16
		sl.connect = false
		if !refreshing && time.Since(idAt) > idRefresh {
			// Ask for a new ID in this slot; the others go on with
			// the current one, which stays valid for a while yet.
			refreshing, sl.connect = true, true
			sl.pkt = sl.pkt[:16]
			binary.BigEndian.PutUint64(sl.pkt, udpProtocolID)
			binary.BigEndian.PutUint32(sl.pkt[8:], actionConnect)
		} else {
			sl.pkt = append(sl.pkt[:0], next(w)...)
			binary.BigEndian.PutUint64(sl.pkt, id)
		}
		binary.BigEndian.PutUint32(sl.pkt[12:], sl.tx)
		sl.sent = time.Now()
		if _, err := c.Write(sl.pkt); err != nil {
			fail(err)
		}
	}
	for s := range slots {
		slots[s].pkt = make([]byte, 0, 128)
		send(s)
	}
	lat := make([]time.Duration, 0, 1<<16)
	buf := make([]byte, 4096)
	for !stop.Load() {
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				fail(err)
				time.Sleep(10 * time.Millisecond)
			}
			// Everything outstanding is lost: count it and send anew.
			for s := range slots {
				if slots[s].connect {
					refreshing = false
				}
				res.requests++
				fail(errors.New("announce unanswered after 1s"))
				send(s)
			}
			continue
		}
		if n < 8 {
			continue
		}
		tx := binary.BigEndian.Uint32(buf[4:])
		s := int(tx & 0xffff)
		if s >= len(slots) || slots[s].tx != tx {
			continue // a late answer to a request already counted lost
		}
		now := time.Now()
		switch action := binary.BigEndian.Uint32(buf); {
		case slots[s].connect:
			refreshing = false
			if action == actionConnect && n >= 16 {
				id, idAt = binary.BigEndian.Uint64(buf[8:]), now
				res.dials++
			} else {
				fail(fmt.Errorf("connect answered with action %d", action))
			}
		case action == actionAnnounce:
			res.requests++
			lat = append(lat, now.Sub(slots[s].sent))
		case action == actionError:
			res.requests++
			fail(fmt.Errorf("refused: %q", buf[8:n]))
		default:
			res.requests++
			fail(fmt.Errorf("answer with action %d", action))
		}
		send(s)
	}
	res.lat = lat
	return res
}

// trackerCommand runs a tracker, on CPU 1 with -pin.
func trackerCommand(o options, bin string, args ...string) *exec.Cmd {
	if o.pin {
		return exec.Command("taskset", append([]string{"-c", "1", bin}, args...)...)
	}
	return exec.Command(bin, args...)
}

// pinSelf runs trackerbench again on CPU 0 alone: a process's threads
// inherit its affinity only when they are created, so it is set before
// the Go runtime starts them.
func pinSelf() {
	bin, err := exec.LookPath("taskset")
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackerbench: -pin needs taskset (util-linux)")
		os.Exit(1)
	}
	self, err := os.Executable()
	if err == nil {
		err = syscall.Exec(bin, append([]string{"taskset", "-c", "0", self}, os.Args[1:]...), append(os.Environ(), "TRACKERBENCH_PINNED=1"))
	}
	fmt.Fprintln(os.Stderr, "trackerbench: -pin:", err)
	os.Exit(1)
}
