package portmap

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseRoutes(t *testing.T) {
	// /proc/net/route of a host with a default route on eth0 via
	// 192.168.1.1, one on wlan0 via 10.0.0.1 and plain link routes.
	const table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
		"eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n" +
		"wlan0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
		"tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"bad\t00000000\tZZ\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	got := parseRoutes(strings.NewReader(table))
	want := []gateway{
		{netip.MustParseAddr("192.168.1.1"), "eth0"},
		{netip.MustParseAddr("10.0.0.1"), "wlan0"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("parseRoutes = %v, want %v", got, want)
	}
}

func TestScopeLoopbackSendsNothing(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "::1", "127.3.4.5", "::ffff:127.0.0.1"} {
		if sc, why := scopeOf(netip.MustParseAddr(a)); why == "" || len(sc.locals)+len(sc.gateways) != 0 {
			t.Errorf("scopeOf(%s) = %+v, %q: want nothing to talk to", a, sc, why)
		}
	}
	// A Mapper on loopback ends at once, having tried nothing: its
	// discovery would otherwise take its full window.
	start := time.Now()
	m := Start(context.Background(), Config{Listen: netip.MustParseAddrPort("127.0.0.1:6881"), Discovery: 5 * time.Second})
	m.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a loopback mapper ran %v: it searched for a router", d)
	}
}

func TestScopeSpecificAddress(t *testing.T) {
	locals, err := localAddrs()
	if err != nil {
		t.Fatal(err)
	}
	if len(locals) == 0 {
		t.Skip("no multicast-capable IPv4 interface on this machine to scope to")
	}
	l := locals[0]
	sc, why := scopeOf(l.addr)
	if why != "" || len(sc.locals) != 1 || sc.locals[0] != l {
		t.Fatalf("scopeOf(%v) = %+v, %q: want only %v", l.addr, sc, why, l)
	}
	for _, gw := range sc.gateways {
		if !l.prefix.Contains(gw) {
			t.Errorf("gateway %v of %v is off its subnet %v", gw, l.addr, l.prefix)
		}
	}
	if _, why := scopeOf(netip.MustParseAddr("192.0.2.77")); why == "" {
		t.Errorf("an address on no interface got a scope")
	}
}

// logBuffer collects a Mapper's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// holdOnce runs a Mapper's hold loop on r through one round of mapping,
// then closes it, and returns what it logged and the external address
// it reported.
func holdOnce(t *testing.T, r router, port uint16, rounds func() bool) (string, netip.AddrPort) {
	t.Helper()
	var logs logBuffer
	var ext netip.AddrPort
	var mu sync.Mutex
	m := &Mapper{
		cfg: Config{Listen: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Lease: time.Hour, Description: "shoal test",
			OnExternal: func(a netip.AddrPort) { mu.Lock(); ext = a; mu.Unlock() }},
		log:  slog.New(slog.NewTextHandler(&logs, nil)),
		done: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { defer close(m.done); m.hold(ctx, r) }()
	deadline := time.Now().Add(5 * time.Second)
	for !rounds() {
		if time.Now().After(deadline) {
			t.Fatalf("the mapper did not get through a round; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.Close()
	mu.Lock()
	defer mu.Unlock()
	if got := m.External(); got != ext {
		t.Errorf("External() = %v, reported %v", got, ext)
	}
	return logs.String(), ext
}

// natpmpResponder is a UDP socket on a loopback address's NAT-PMP port
// that answers each request with answer(request).
type natpmpResponder struct {
	gw   netip.Addr
	mu   sync.Mutex
	reqs [][]byte
}

func startNATPMP(t *testing.T, gw string, answer func(req []byte) []byte) *natpmpResponder {
	t.Helper()
	r := &natpmpResponder{gw: netip.MustParseAddr(gw)}
	conn, err := net.ListenPacket("udp4", net.JoinHostPort(gw, "5351"))
	if err != nil {
		t.Fatalf("NAT-PMP responder: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			req := append([]byte(nil), buf[:n]...)
			r.mu.Lock()
			r.reqs = append(r.reqs, req)
			r.mu.Unlock()
			if resp := answer(req); resp != nil {
				conn.WriteTo(resp, from)
			}
		}
	}()
	return r
}

func (r *natpmpResponder) requests() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.reqs...)
}

// natpmpAnswer builds a well-formed answer to req: the external address
// 198.51.100.7, and a mapping of external port ext for lifetime life.
func natpmpAnswer(req []byte, ext uint16, life uint32, code uint16) []byte {
	if len(req) < 2 {
		return nil
	}
	if req[1] == 0 {
		resp := make([]byte, 12)
		resp[1] = 0x80
		binary.BigEndian.PutUint16(resp[2:], code)
		copy(resp[8:], []byte{198, 51, 100, 7})
		return resp
	}
	if len(req) < 12 {
		return nil
	}
	resp := make([]byte, 16)
	resp[1] = req[1] | 0x80
	binary.BigEndian.PutUint16(resp[2:], code)
	copy(resp[8:10], req[4:6])
	binary.BigEndian.PutUint16(resp[10:], ext)
	binary.BigEndian.PutUint32(resp[12:], life)
	return resp
}

// mapRequests counts the mapping requests (TCP, UDP) among reqs with a
// non-zero lifetime, and the removals (lifetime 0).
func mapRequests(reqs [][]byte) (maps, removes int) {
	for _, q := range reqs {
		if len(q) == 12 && (q[1] == 1 || q[1] == 2) {
			if binary.BigEndian.Uint32(q[8:]) == 0 {
				removes++
			} else {
				maps++
			}
		}
	}
	return
}

func TestNATPMP(t *testing.T) {
	const port = 51413
	cases := []struct {
		name   string
		gw     string
		answer func(req []byte) []byte
		want   string // in the log; "" = mapped
	}{
		{"honest", "127.77.0.1", func(q []byte) []byte { return natpmpAnswer(q, port, 3600, 0) }, ""},
		{"other port", "127.77.0.2", func(q []byte) []byte { return natpmpAnswer(q, port+1, 3600, 0) }, "router mapped external port 51414 instead of 51413"},
		{"refused", "127.77.0.3", func(q []byte) []byte { return natpmpAnswer(q, 0, 0, 2) }, "router refused: NAT-PMP result 2, not authorized"},
		{"garbage", "127.77.0.4", func(q []byte) []byte { return []byte("HTTP/1.1 200 OK\r\n\r\nnot NAT-PMP at all") }, "unknown protocol version 72"},
		{"zero lifetime", "127.77.0.5", func(q []byte) []byte { return natpmpAnswer(q, port, 0, 0) }, "lifetime of 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := startNATPMP(t, tc.gw, tc.answer)
			r := &natPMP{gw: resp.gw}
			logs, ext := holdOnce(t, r, port, func() bool {
				maps, removes := mapRequests(resp.requests())
				return maps >= 2 || removes >= 2
			})
			maps, removes := mapRequests(resp.requests())
			if tc.want == "" {
				if want := netip.MustParseAddrPort("198.51.100.7:51413"); ext != want {
					t.Fatalf("external = %v, want %v; log:\n%s", ext, want, logs)
				}
				if removes != 2 {
					t.Fatalf("%d removals on close, want 2 (TCP and UDP)", removes)
				}
				if strings.Contains(logs, "level=WARN") {
					t.Fatalf("warnings from an honest router:\n%s", logs)
				}
				return
			}
			if ext.IsValid() {
				t.Fatalf("reported external %v from a router that mapped nothing usable", ext)
			}
			if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, tc.want) || !strings.Contains(logs, "serving on local port 51413 only") {
				t.Fatalf("log lacks a warning with %q:\n%s", tc.want, logs)
			}
			if tc.name == "other port" && removes < 2 {
				t.Fatalf("a mapping on the wrong port was not given back (%d maps, %d removals)", maps, removes)
			}
		})
	}
	t.Run("double NAT", func(t *testing.T) {
		// The mapping holds, but the router's own external address is
		// a carrier-grade NAT one: say so, and report it all the same.
		resp := startNATPMP(t, "127.77.0.7", func(q []byte) []byte {
			a := natpmpAnswer(q, port, 3600, 0)
			if len(a) == 12 {
				copy(a[8:], []byte{100, 64, 3, 4})
			}
			return a
		})
		logs, ext := holdOnce(t, &natPMP{gw: resp.gw}, port, func() bool {
			maps, _ := mapRequests(resp.requests())
			return maps >= 2
		})
		if want := netip.MustParseAddrPort("100.64.3.4:51413"); ext != want {
			t.Fatalf("external = %v, want %v; log:\n%s", ext, want, logs)
		}
		if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "another NAT lies beyond it") {
			t.Fatalf("no warning of a second NAT:\n%s", logs)
		}
	})
	t.Run("garbage probe", func(t *testing.T) {
		startNATPMP(t, "127.77.0.6", func(q []byte) []byte { return []byte{0, 0x80} })
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if r, err := probeNATPMP(ctx, netip.MustParseAddr("127.77.0.6")); err == nil {
			t.Fatalf("probe accepted a garbage answer: %v", r)
		}
	})
}

// igdDescription is a device description with one WANIPConnection:1
// service whose control URL is ctl.
func igdDescription(ctl string) string {
	return `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><friendlyName>t</friendlyName><UDN>uuid:1</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><UDN>uuid:2</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><UDN>uuid:3</UDN>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>` + ctl + `</controlURL><eventSubURL>/ev</eventSubURL><SCPDURL>/scpd.xml</SCPDURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>`
}

const soapFault718 = `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>
<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0">
<errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`

func TestUPnPBadRouter(t *testing.T) {
	lo := local{addr: netip.MustParseAddr("127.0.0.1"), prefix: netip.MustParsePrefix("127.0.0.0/8"), iface: "lo"}
	var mu sync.Mutex
	var soapCalls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/garbage.xml":
			io.WriteString(w, "\x00\x01<<<not xml")
		case "/noservice.xml":
			io.WriteString(w, `<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:x</deviceType></device></root>`)
		case "/garbagesoap.xml":
			io.WriteString(w, igdDescription("/ctl/garbage"))
		case "/elsewhere.xml":
			io.WriteString(w, igdDescription("http://192.0.2.1:5000/ctl"))
		case "/conflict.xml":
			io.WriteString(w, igdDescription("/ctl/conflict"))
		case "/ctl/garbage":
			mu.Lock()
			soapCalls = append(soapCalls, r.Header.Get("SOAPAction"))
			mu.Unlock()
			io.WriteString(w, "\xff\xfe garbage")
		case "/ctl/conflict":
			mu.Lock()
			soapCalls = append(soapCalls, r.Header.Get("SOAPAction"))
			mu.Unlock()
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, soapFault718)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	at := func(path string) (router, error) {
		u, _ := url.Parse(srv.URL + path)
		return upnpAt(ctx, lo, u)
	}
	for _, p := range []string{"/garbage.xml", "/noservice.xml", "/missing.xml", "/elsewhere.xml"} {
		if r, err := at(p); err == nil {
			t.Errorf("%s: accepted as a router: %v", p, r)
		}
	}
	off, _ := url.Parse("http://192.0.2.1:5000/rootDesc.xml")
	if _, err := upnpAt(ctx, lo, off); err == nil || !strings.Contains(err.Error(), "not on 127.0.0.0/8") {
		t.Errorf("a location off the local subnet was followed: %v", err)
	}

	for _, tc := range []struct{ path, want string }{
		{"/garbagesoap.xml", "error decoding response body"},
		{"/conflict.xml", "UPnP error 718 ConflictInMappingEntry"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r, err := at(tc.path)
			if err != nil {
				t.Fatalf("a well-described IGD was refused: %v", err)
			}
			mu.Lock()
			soapCalls = nil
			mu.Unlock()
			logs, ext := holdOnce(t, r, 51413, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(soapCalls) >= 2
			})
			if ext.IsValid() {
				t.Fatalf("reported external %v from a router that mapped nothing", ext)
			}
			if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, tc.want) || !strings.Contains(logs, "serving on local port 51413 only") {
				t.Fatalf("log lacks a warning with %q:\n%s", tc.want, logs)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, a := range soapCalls {
				if strings.Contains(a, "DeletePortMapping") {
					t.Errorf("removed a mapping that was never made: %v", soapCalls)
				}
			}
		})
	}
}
