package dht

import (
	"context"
	"net"
	"slices"
	"testing"
)

func TestFamilyBootstrap(t *testing.T) {
	v4 := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	v6 := &net.TCPAddr{IP: net.IPv6loopback, Port: 1}
	list := []string{"127.0.0.1:6881", "[::1]:6881", "router.example:6881"}
	if got := FamilyBootstrap(list, v4); !slices.Equal(got, []string{"127.0.0.1:6881", "router.example:6881"}) {
		t.Errorf("IPv4: %v", got)
	}
	if got := FamilyBootstrap(list, v6); !slices.Equal(got, []string{"[::1]:6881", "router.example:6881"}) {
		t.Errorf("IPv6: %v", got)
	}
	if FamilyBootstrap(nil, v4) != nil {
		t.Error("nil (the public routers) not kept nil")
	}
	if got := FamilyBootstrap([]string{"[::1]:1"}, v4); got == nil || len(got) != 0 {
		t.Errorf("none left: %v, want empty, not nil", got)
	}
}

// TestNewForListenerPortTaken takes the UDP twin of a listener's port:
// the node binds another port of the same family.
func TestNewForListenerPortTaken(t *testing.T) {
	taken, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	a := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: taken.LocalAddr().(*net.UDPAddr).Port}
	var named net.Addr
	n, err := NewForListener(context.Background(), a, Config{Bootstrap: []string{}}, func(udp net.Addr) string {
		named = udp
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	u, ok := named.(*net.UDPAddr)
	if !ok || u.Port == a.Port || u.IP.To4() == nil {
		t.Fatalf("node bound %v with %v taken", named, taken.LocalAddr())
	}
}
