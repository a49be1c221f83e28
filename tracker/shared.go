package tracker

import (
	"sync"
	"time"
)

// listPollInterval is how often an instance on a shared store checks
// whether another instance changed the allow-list or passkeys: a revoked
// passkey stops working everywhere within about this long.
const listPollInterval = time.Second

// listSync keeps a Server's allow-list and passkeys in step with a shared
// store (a RedisStore): a reload (SIGHUP) publishes them, and every
// instance adopts what was published last. A new instance adopts the
// store's lists rather than overwriting them with its own files, so that
// starting an instance with a stale file cannot undo a revocation; it
// publishes its own only when the store has none (a first start, or a
// Redis that restarted without persistence).
type listSync struct {
	rs *RedisStore // nil unless the store is shared

	mu     sync.Mutex
	synced bool  // the store's lists were adopted or ours published
	ver    int64 // version in force
}

// sharedStore returns the shared store, nil for a store of one instance.
func (s *Server) sharedStore() *RedisStore {
	rs, _ := s.store.(*RedisStore)
	return rs
}

// syncLists adopts the shared lists when their version changed, or
// publishes this instance's when the store has none. It is called at
// start and every listPollInterval; a failure is retried on the next.
func (s *Server) syncLists() {
	ls := &s.lists
	if ls.rs == nil {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ver, ok, err := ls.rs.listsVersion()
	if err != nil {
		return
	}
	if !ok {
		s.publishLocked(true, true)
		return
	}
	if ls.synced && ver == ls.ver {
		return
	}
	l, err := ls.rs.loadLists()
	if err != nil {
		return
	}
	if l.HasKeys && s.cfg.Private {
		s.keys.Store(&l.Keys)
	}
	if l.HasAllow {
		s.setAllow(l.Allow)
	}
	ls.ver, ls.synced = l.Version, true
	s.log.Info("tracker lists adopted from the shared store", "version", l.Version, "passkeys", len(l.Keys), "allow_listed", len(l.Allow))
}

// publishLocked writes the lists in force to the shared store: keys only
// for a private tracker. ls.mu is held.
func (s *Server) publishLocked(keys, allow bool) {
	ls := &s.lists
	var km map[string]struct{}
	if keys && s.cfg.Private {
		if p := s.keys.Load(); p != nil {
			km = *p
		}
	}
	var al *[]InfoHash
	if allow {
		var hs []InfoHash
		if m := s.allow.Load(); m != nil {
			for h := range *m {
				hs = append(hs, h)
			}
		}
		al = &hs
	}
	if km == nil && al == nil {
		return
	}
	ver, err := ls.rs.publishLists(km, al)
	if err != nil {
		s.log.Warn("tracker lists not published to the shared store; retrying", "err", err)
		ls.synced = false
		return
	}
	ls.ver, ls.synced = ver, true
}

// publishLists shares a reloaded list with the other instances. Before
// the first sync it does nothing: the start-up sync decides whether the
// store's lists or this instance's win.
func (s *Server) publishLists(keys, allow bool) {
	ls := &s.lists
	if ls.rs == nil {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.synced {
		s.publishLocked(keys, allow)
	}
}

// storeHealth reports a shared store's reachability for /stats.
func (s *Server) storeHealth() *StoreHealth {
	if rs := s.sharedStore(); rs != nil {
		h := rs.Health()
		return &h
	}
	return nil
}

// scrapeStore asks the store for h's counts, with the error a shared
// store reports when it cannot be reached.
func (s *Server) scrapeStore(now time.Time, h InfoHash) (Swarm, error) {
	if rs := s.sharedStore(); rs != nil {
		return rs.ScrapeErr(now, h)
	}
	return s.store.Scrape(now, h), nil
}
