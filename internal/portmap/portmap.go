// Package portmap opens the peer port on the home router, through UPnP IGD
// (github.com/huin/goupnp) or NAT-PMP (github.com/jackpal/go-nat-pmp), so
// that peers outside the LAN can connect to a shoal behind NAT.
//
// It keeps to the interfaces the listen address covers: a listener on a
// loopback address maps nothing and sends nothing; one on a specific
// address searches for a router only from that address, and asks NAT-PMP
// only of the gateway on that address's interface; one on the wildcard
// address searches from every IPv4 interface. Everything runs in the
// background: discovery is bounded and never delays the caller.
package portmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Defaults for Config's zero values.
const (
	// DefaultLease is the lifetime asked of the router: RFC 6886 suggests
	// two hours; a mapping left behind by a crash lapses by itself.
	DefaultLease = 2 * time.Hour
	// DefaultDiscovery bounds the search for a router.
	DefaultDiscovery = 3 * time.Second
	// removeTimeout bounds the removal of the mappings on Close, so that a
	// router gone silent cannot hold up the exit.
	removeTimeout = 2 * time.Second
	// callTimeout bounds one request to a router found earlier.
	callTimeout = 3 * time.Second
)

// Config configures a Mapper.
type Config struct {
	// Listen is the address of the peer listener; its port is mapped for
	// TCP and UDP alike (the DHT uses the UDP twin of the peer port).
	Listen netip.AddrPort
	// Lease is the lifetime asked for; mappings are renewed at half of the
	// lifetime granted. Zero means DefaultLease.
	Lease time.Duration
	// Discovery bounds the search for a router; zero means DefaultDiscovery.
	Discovery time.Duration
	// Description names the mapping in the router's table.
	Description string
	// Logger receives warnings; nil means slog's default.
	Logger *slog.Logger
	// OnExternal is called, from the mapper's goroutine, each time the
	// external address through which the TCP port is reachable is first
	// known or changes.
	OnExternal func(netip.AddrPort)
}

// Mapper holds the mappings of one listen port.
type Mapper struct {
	cfg    Config
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	external netip.AddrPort
}

// Start begins mapping cfg.Listen's port in the background and returns at
// once. Close removes the mappings.
func Start(ctx context.Context, cfg Config) *Mapper {
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Discovery <= 0 {
		cfg.Discovery = DefaultDiscovery
	}
	if cfg.Description == "" {
		cfg.Description = "shoal"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Mapper{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	ctx, m.cancel = context.WithCancel(ctx)
	go m.run(ctx)
	return m
}

// External returns the external address the TCP port is mapped to, or the
// zero value while no mapping holds.
func (m *Mapper) External() netip.AddrPort {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.external
}

// Close stops renewing and removes the mappings made, waiting a bounded
// time for the router to answer.
func (m *Mapper) Close() {
	m.cancel()
	<-m.done
}

// router is one gateway found, spoken to in its protocol.
type router interface {
	// String names the protocol and the gateway, for messages.
	String() string
	// externalIP asks the gateway for its external address.
	externalIP(ctx context.Context) (netip.Addr, error)
	// add maps external port to the same internal port of proto ("TCP" or
	// "UDP") and returns the external port and lifetime the router granted.
	add(ctx context.Context, proto string, port uint16, lease time.Duration) (uint16, time.Duration, error)
	// remove deletes the mapping of port.
	remove(ctx context.Context, proto string, port uint16) error
}

var protos = [2]string{"TCP", "UDP"}

func (m *Mapper) run(ctx context.Context) {
	defer close(m.done)
	port := m.cfg.Listen.Port()
	sc, why := scopeOf(m.cfg.Listen.Addr())
	if why != "" {
		m.log.Debug("port mapping off", "reason", why)
		return
	}
	r := discover(ctx, sc, m.cfg.Discovery, m.log)
	if r == nil {
		if ctx.Err() == nil {
			m.log.Info(fmt.Sprintf("port mapping: no UPnP IGD or NAT-PMP router answered within %v; serving on local port %d only", m.cfg.Discovery, port))
		}
		return
	}
	if u, ok := r.(*upnpIGD); ok {
		u.desc = m.cfg.Description
	}
	m.hold(ctx, r)
}

// hold keeps the port mapped on r until ctx ends, then removes what it
// mapped. A router that refuses, answers nonsense or maps another port
// gets a warning, not an error: the listener serves on regardless.
func (m *Mapper) hold(ctx context.Context, r router) {
	port := m.cfg.Listen.Port()
	// held: mapped at the last round; made: mapped at some round, so
	// perhaps still on the router even after a failed renewal.
	var held, made [2]bool
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
		defer cancel()
		for i, p := range protos {
			if made[i] {
				if err := r.remove(rctx, p, port); err != nil {
					m.log.Warn(fmt.Sprintf("port mapping: removing %s port %d on %s: %v", p, port, r, err))
				}
			}
		}
	}()
	warned := [2]string{}
	for {
		renew := m.cfg.Lease / 2
		for i, p := range protos {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			ext, life, err := r.add(cctx, p, port, m.cfg.Lease)
			cancel()
			if err != nil && ctx.Err() != nil {
				// Shutting down: an interrupted request is no news.
				return
			}
			if err == nil && ext != port {
				// Peers learn our port from trackers, the DHT and the
				// handshake, all of which say the local one: a mapping
				// on another port reaches no one, so give it back.
				err = fmt.Errorf("router mapped external port %d instead of %d", ext, port)
				rctx, cancel := context.WithTimeout(ctx, callTimeout)
				r.remove(rctx, p, port)
				cancel()
			}
			if err != nil {
				held[i] = false
				if msg := err.Error(); msg != warned[i] {
					warned[i] = msg
					m.log.Warn(fmt.Sprintf("port mapping: %s port %d on %s: %v; serving on local port %d only", p, port, r, err, port))
				}
				continue
			}
			held[i], made[i], warned[i] = true, true, ""
			if life > 0 {
				renew = min(renew, life/2)
			}
		}
		m.publish(ctx, r, held[0], port)
		if !held[0] || !held[1] {
			// Try again sooner than the lease: the router may come round.
			renew = min(renew, time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(renew, time.Second)):
		}
	}
}

// publish learns the external address while the TCP mapping holds and
// reports it when it changes.
func (m *Mapper) publish(ctx context.Context, r router, held bool, port uint16) {
	var ext netip.AddrPort
	if held {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		ip, err := r.externalIP(cctx)
		cancel()
		if err == nil && !usableExternal(ip) {
			err = fmt.Errorf("unusable external address %v", ip)
		}
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn(fmt.Sprintf("port mapping: %s: %v; the port is mapped but its external address is unknown", r, err))
			}
		} else {
			ext = netip.AddrPortFrom(ip, port)
		}
	}
	m.mu.Lock()
	changed := ext != m.external
	m.external = ext
	m.mu.Unlock()
	if changed && ext.IsValid() {
		if behindNAT(ext.Addr()) {
			m.log.Warn(fmt.Sprintf("port mapping: %s's external address %v is itself private: another NAT lies beyond it, and peers on the internet still cannot reach port %d", r, ext.Addr(), port))
		}
		if m.cfg.OnExternal != nil {
			m.cfg.OnExternal(ext)
		}
	}
}

// usableExternal reports whether ip can be an external address at all.
func usableExternal(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsLoopback() && !ip.IsMulticast() && !ip.IsLinkLocalUnicast()
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// behindNAT reports whether an external address is one only a further
// NAT (the ISP's, or a second router) hands out.
func behindNAT(ip netip.Addr) bool {
	return ip.IsPrivate() || cgnat.Contains(ip)
}

// discover looks for a router within d, every way the scope allows at
// once, and returns the first that answers, or nil.
func discover(ctx context.Context, sc scope, d time.Duration, log *slog.Logger) router {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	found := make(chan router, len(sc.gateways)+len(sc.locals))
	var wg sync.WaitGroup
	for _, gw := range sc.gateways {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := probeNATPMP(ctx, gw)
			if err != nil {
				log.Debug("port mapping: NAT-PMP", "gateway", gw, "err", err)
				return
			}
			found <- r
		}()
	}
	for _, l := range sc.locals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := searchUPnP(ctx, l)
			if err != nil {
				log.Debug("port mapping: UPnP", "from", l.addr, "err", err)
				return
			}
			found <- r
		}()
	}
	go func() { wg.Wait(); close(found) }()
	var r router
	select {
	case r = <-found:
	case <-ctx.Done():
	}
	cancel()
	// Wait for the others, so that nothing outlives the call.
	for range found {
	}
	return r
}

// errNoRouter says a search found no gateway.
var errNoRouter = errors.New("no router found")
