package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// The RPC on an address other machines could reach, without --rpc-auth,
// is said loudly on stderr; on loopback, or with a password, it is not.
// The daemon runs in a network namespace of its own, whose only outside
// address is on a veth pair inside it: binding there (or on 0.0.0.0) is the
// real thing, yet nothing beyond the namespace can reach it.
func TestDaemonRPCExposedWarning(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs it as root)")
	}
	const addr = "10.77.0.1"
	auth := t.TempDir() + "/auth"
	os.WriteFile(auth, []byte("alice:s3cret\n"), 0o600)
	for _, tc := range []struct {
		args []string
		warn bool
		rpc  string
	}{
		{[]string{"--rpc", addr + ":0"}, true, "rpc: http://" + addr + ":"},
		{[]string{"--rpc", "0.0.0.0:0"}, true, "rpc: http://127.0.0.1:"},
		{[]string{"--rpc", addr + ":0", "--rpc-auth", auth}, false, "rpc: http://" + addr + ":"},
		{[]string{"--rpc", "127.0.0.2:0"}, false, "rpc: http://127.0.0.2:"},
	} {
		script := "ip link set lo up && ip link add v0 type veth peer name v1 && ip addr add " + addr + "/24 dev v0 && ip link set v1 up && ip link set v0 up && exec \"$0\" \"$@\""
		args := append([]string{"--net", "--", "sh", "-c", script, shoalBin, "daemon", "--session", t.TempDir(), "--no-dht", "--no-lsd", "--no-port-map"}, tc.args...)
		p := startCmd(t, t.TempDir(), exec.Command("unshare", args...))
		rpcURL := p.field(t, "rpc")
		p.field(t, "web")
		if !strings.HasPrefix("rpc: "+rpcURL, tc.rpc) {
			t.Errorf("%v: rpc line %q, want %s…", tc.args, rpcURL, tc.rpc)
		}
		if code := p.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("%v: exit %d: %s", tc.args, code, p.errText())
		}
		warned := strings.Contains(p.errText(), "NO PASSWORD")
		if warned != tc.warn {
			t.Errorf("%v: warned %v, want %v:\n%s", tc.args, warned, tc.warn, p.errText())
		}
	}
}
