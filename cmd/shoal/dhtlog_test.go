package main

import (
	"bytes"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A stranger's malformed 60 KB packet used to be logged whole, at every
// level, by the DHT library. At the default level nothing is logged now;
// at debug the line is cut short and escaped.
func TestDHTMalformedPacketLogIsShort(t *testing.T) {
	for _, level := range []string{"warn", "debug"} {
		node := startDHT(t, t.TempDir(), "--bootstrap", "none", "--log-level", level)
		conn, err := net.Dial("udp", node.addr)
		if err != nil {
			t.Fatal(err)
		}
		// Both fail to parse past their first byte, the case the library
		// logs: the first is 60 KB long, the second carries escapes.
		conn.Write(append([]byte("d1:ai1e"), bytes.Repeat([]byte("x"), 60000)...))
		conn.Write([]byte("d1:t2:aa1:y1:q1:q4:ping1:ad2:id20:" + strings.Repeat("\x1b[31m\nforged", 5) + "ee"))
		// A ping answered after them shows they were handled.
		conn.Write([]byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:zz1:y1:qe"))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1500)
		for {
			// The node may ping us back first; wait for the answer.
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("%s: no answer to the ping: %v", level, err)
			}
			if bytes.Contains(buf[:n], []byte("1:t2:zz1:y1:r")) {
				break
			}
		}
		conn.Close()
		if code := node.stop(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("%s: exit %d", level, code)
		}
		logged := node.errText()
		for _, l := range strings.Split(logged, "\n") {
			if len(l) > 400 {
				t.Errorf("%s: a log line of %d bytes: %.200s…", level, len(l), l)
			}
		}
		noRaw(t, "dht --log-level "+level, logged)
		switch n := strings.Count(logged, "bad krpc message"); {
		case level == "warn" && n != 0:
			t.Errorf("malformed packets logged at the default level:\n%s", logged)
		case level == "debug" && n != 2:
			t.Errorf("debug shows %d of the 2 malformed packets:\n%s", n, logged)
		}
	}
}
