package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoal-p2p/shoal/internal/termsafe"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm"
)

// errNoPeerSource is get's answer when nothing could ever name a peer:
// waiting would be forever.
func errNoPeerSource() error {
	return usageError("get: no way to find peers: give --peer, a magnet with x.pe or tr, a torrent with trackers, or -t, or leave the DHT or local discovery on")
}

// peerSources names where a download looks for peers besides the
// addresses it was given, for the line saying what it waits for: "1
// tracker and the DHT". m is nil for a magnet; mg is then its link.
func peerSources(c *cli.Context, m *piece.MetaInfo, mg piece.Magnet, dht bool) string {
	tiers := magnetTiers(mg, c.StringSlice("tracker"))
	if m != nil {
		tiers = m.Tiers(c.StringSlice("tracker")...)
	}
	trackers := 0
	for _, tier := range tiers {
		trackers += len(tier)
	}
	var src []string
	switch trackers {
	case 0:
	case 1:
		src = append(src, "1 tracker")
	default:
		src = append(src, fmt.Sprintf("%d trackers", trackers))
	}
	if dht {
		src = append(src, "the DHT")
	}
	if lsdWanted(c, m != nil && m.Info.Private) {
		src = append(src, "local discovery")
	}
	return strings.Join(src, " and ")
}

// waitingFor says what a download with no peer connected waits for:
// "waiting for peers: 1 peer address known, last attempt 127.0.0.1:6881:
// connect: connection refused; retrying". It is "" once a peer is
// connected. live adds the "retrying" a running download can promise.
func waitingFor(s swarm.Stats, sources string, live bool) string {
	if s.Peers > 0 {
		return ""
	}
	return waitLine("peers", s.KnownAddrs, sources, s.LastDialError, live)
}

// waitLine words a wait for what ("peers", "metadata"): how many addresses
// are known, where more may come from, and why the last attempt failed.
func waitLine(what string, known int, sources, lastErr string, live bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "waiting for %s: ", what)
	switch known {
	case 0:
		b.WriteString("no peer address yet")
	case 1:
		b.WriteString("1 peer address known")
	default:
		fmt.Fprintf(&b, "%d peer addresses known", known)
	}
	if sources != "" {
		fmt.Fprintf(&b, " (asking %s)", sources)
	}
	if lastErr != "" {
		fmt.Fprintf(&b, ", last attempt %s", lastErr)
		if live {
			b.WriteString("; retrying")
		}
	}
	return b.String()
}

// waitGrace is how long a download may have no peer before it says so: a
// peer that is up connects well within it.
const waitGrace = time.Second

// reportWaiting prints, on a stderr that is not a terminal, why a download
// has no peer as soon as that is clear, and again whenever the reason
// changes, rather than only in the periodic status line. The returned stop
// waits for it to finish.
func reportWaiting(ctx context.Context, w io.Writer, t *swarm.Torrent, sources string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var since time.Time // when the torrent last had no peer, zero while it has some
		last := ""
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				wait := waitingFor(t.Stats(), sources, true)
				switch {
				case wait == "":
					since, last = time.Time{}, ""
				case since.IsZero():
					since = now
				case now.Sub(since) >= waitGrace && wait != last:
					fmt.Fprintln(w, termsafe.String(wait))
					last = wait
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
