package tracker

import (
	"context"
	"net"
)

// Listen opens a TCP listener tuned for Serve. TCP keep-alive probes are
// off, since Serve's deadlines already drop dead connections and enabling
// probes costs several system calls on each of the many short connections
// clients open; on Linux, accept waits until a client has sent data
// (TCP_DEFER_ACCEPT). Any net.Listener works with Serve; this one is
// faster.
func Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1, Control: listenControl}
	return lc.Listen(ctx, network, addr)
}
