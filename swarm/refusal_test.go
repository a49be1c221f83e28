package swarm

import (
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"testing"

	"github.com/shoal-p2p/shoal/swarm/wire"
)

// Every reason addConn gives has a counter of its own, not "other".
func TestConnRefusalsNamed(t *testing.T) {
	src, err := os.ReadFile("torrent.go")
	if err != nil {
		t.Fatal(err)
	}
	found := regexp.MustCompile(`reason = "([^"]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(found) < 5 {
		t.Fatalf("found %d of addConn's reasons; has it changed shape?", len(found))
	}
	for _, f := range found {
		if r := connRefusal(f[1]); r == RefusedOther {
			t.Errorf("addConn's reason %q has no counter", f[1])
		}
	}
}

// Every reason has a name, and the causes of a peer's close are told apart
// however they are wrapped.
func TestDropReasons(t *testing.T) {
	for r := range NumRefusals {
		if r.String() == "" {
			t.Errorf("refusal %d has no name", r)
		}
	}
	for _, c := range []struct {
		err  error
		want Refusal
		ok   bool
	}{
		{nil, 0, false},
		{io.EOF, 0, false},
		{net.ErrClosed, 0, false},
		{errIdle, DroppedIdle, true},
		{errSendOverflow, DroppedSendOverflow, true},
		{fmt.Errorf("%w after %d pieces of bad data", errBanned, 2), DroppedBanned, true},
		{protocolError(ViolationRequestFlood, "more than %d requests queued", 5), ViolationRequestFlood, true},
		{fmt.Errorf("wire: x: %w", wire.ErrBadLength), ViolationMalformed, true},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, DroppedTimeout, true},
	} {
		got, ok := dropReason(c.err)
		if got != c.want || ok != c.ok {
			t.Errorf("dropReason(%v) = %v, %t; want %v, %t", c.err, got, ok, c.want, c.ok)
		}
	}
	if err := fmt.Errorf("%w after %d pieces of bad data", errBanned, 2); err.Error() != "banned after 2 pieces of bad data" {
		t.Errorf("ban message changed: %q", err)
	}
	if got := protocolError(ViolationHave, "have %d", 7).Error(); got != "protocol violation: have 7" {
		t.Errorf("protocol violation reads %q", got)
	}
}
