package tracker

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// ErrPeerIDInUse is returned by a Store when an announce reuses the peer_id
// of a peer that registered a BEP 7 key, from another address and without
// that key: it stops one client from removing or moving another's entry.
var ErrPeerIDInUse error = errPeerIDInUse

// PeerAnnounce is what the server hands a Store for one announce, already
// validated and with the peer's address decided.
type PeerAnnounce struct {
	InfoHash InfoHash
	PeerID   PeerID
	// Addr is where other peers should connect: the announcing connection's
	// IP (or a trusted "ip" parameter) and the announced port.
	Addr netip.AddrPort
	// Key is a hash of the BEP 7 key, 0 when the client sent none.
	Key   uint32
	Event Event
	// Seeder is true when the peer announced left=0.
	Seeder bool
	// NumWant is the number of peers to return, already clamped.
	NumWant int
}

// Store keeps swarms for a Server. Implementations must be safe for
// concurrent use; the server calls them from every request goroutine.
type Store interface {
	// Announce records a (or removes the peer on EventStopped), appends up
	// to a.NumWant other peers of the swarm to dst in random order, and
	// returns the swarm counts after the change. It never returns the
	// announcing peer itself.
	Announce(now time.Time, a *PeerAnnounce, dst []Peer) ([]Peer, Swarm, error)
	// Scrape returns the counts for h; an unknown torrent has zero counts.
	Scrape(now time.Time, h InfoHash) Swarm
	// Sweep drops peers that have not announced within the store's TTL as of
	// now, and torrents left empty. The server calls it periodically.
	Sweep(now time.Time)
	// Stats returns totals for monitoring.
	Stats() StoreStats
}

// StoreStats are store-wide totals, reported by /stats.
type StoreStats struct {
	Torrents        int    `json:"torrents"`
	Peers           int    `json:"peers"`
	Seeders         int    `json:"seeders"`
	Leechers        int    `json:"leechers"`
	ExpiredPeers    uint64 `json:"expired_peers"`
	EvictedPeers    uint64 `json:"evicted_peers"`
	EvictedTorrents uint64 `json:"evicted_torrents"`
}

// Default caps of MemStoreConfig. At under 150 bytes per stored peer the
// peer cap bounds peer memory to roughly 150 MB.
const (
	DefaultShards             = 64
	DefaultMaxPeersPerTorrent = 50_000
	DefaultMaxTorrents        = 100_000
	DefaultMaxPeers           = 1_000_000
	DefaultPeerTTL            = 2 * DefaultInterval
)

// MemStoreConfig configures NewMemStore; zero fields take the defaults.
type MemStoreConfig struct {
	// Shards splits torrents by info-hash over this many independently
	// locked shards (default 64, at most 256) so announces on different
	// torrents rarely wait on one another.
	Shards int
	// MaxPeersPerTorrent caps one swarm (default 50,000); when a new peer
	// arrives at a full swarm, the swarm's least recently announced peer is
	// evicted.
	MaxPeersPerTorrent int
	// MaxTorrents caps tracked torrents (default 100,000). It is divided
	// evenly among shards; a new torrent in a full shard evicts that
	// shard's least recently announced torrent.
	MaxTorrents int
	// MaxPeers caps all stored peers (default 1,000,000), also divided among
	// shards; a new peer in a full shard evicts the oldest peer of the
	// shard's least recently announced torrent.
	MaxPeers int
	// PeerTTL is how long a peer stays without announcing (default
	// 2×DefaultInterval). Expired peers are dropped lazily when their
	// torrent is touched and by Sweep.
	PeerTTL time.Duration
}

// MemStore is the default in-memory Store.
//
// A peer is held in a fixed-size 56-byte record inside one slice per
// torrent, plus ~40 bytes of index map once the swarm outgrows a linear
// scan (most swarms are small, and a map per small swarm would cost more
// than its peers); the records of a torrent form an
// intrusive list ordered by last announce, which makes eviction of the
// oldest and expiry O(1) per removed peer.
type MemStore struct {
	shards  []memShard
	nshards uint32
	ttl     uint32 // seconds
	maxPer  int
	maxTor  int // per shard
	maxPeer int // per shard
}

type memShard struct {
	mu       sync.Mutex
	torrents map[InfoHash]*torrent
	// newest/oldest ends of the LRU list of torrents by last announce.
	newest, oldest *torrent
	peers          int
	seeders        int
	expired        uint64
	evictedPeers   uint64
	evictedTorr    uint64
	_              [64]byte // keep hot shard fields on separate cache lines
}

// storedPeer is the compact per-peer record: no pointers, so the GC never
// scans peer slices, and no strings.
type storedPeer struct {
	id     PeerID
	ip     [16]byte
	port   uint16
	seeder bool
	_      uint8
	seen   uint32 // Unix seconds
	key    uint32
	prev   int32 // older neighbour, -1 at the oldest
	next   int32 // newer neighbour, -1 at the newest
}

type torrent struct {
	hash  InfoHash
	peers []storedPeer
	// index finds a peer's record by id; nil while the swarm is small
	// enough (indexMin peers) for a linear scan to be as quick.
	index      map[PeerID]int32
	oldestPeer int32
	newestPeer int32
	seeders    int32
	downloaded uint64
	seen       uint32
	// LRU neighbours in the shard's torrent list.
	older, newer *torrent
}

// NewMemStore returns an empty in-memory store with cfg's caps.
func NewMemStore(cfg MemStoreConfig) *MemStore {
	if cfg.Shards <= 0 {
		cfg.Shards = DefaultShards
	}
	cfg.Shards = min(cfg.Shards, 256)
	if cfg.MaxPeersPerTorrent <= 0 {
		cfg.MaxPeersPerTorrent = DefaultMaxPeersPerTorrent
	}
	if cfg.MaxTorrents <= 0 {
		cfg.MaxTorrents = DefaultMaxTorrents
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.PeerTTL <= 0 {
		cfg.PeerTTL = DefaultPeerTTL
	}
	s := &MemStore{
		shards:  make([]memShard, cfg.Shards),
		nshards: uint32(cfg.Shards),
		ttl:     uint32(max(1, (cfg.PeerTTL+time.Second-1)/time.Second)),
		maxPer:  cfg.MaxPeersPerTorrent,
		maxTor:  max(1, ceilDiv(cfg.MaxTorrents, cfg.Shards)),
		maxPeer: max(1, ceilDiv(cfg.MaxPeers, cfg.Shards)),
	}
	for i := range s.shards {
		s.shards[i].torrents = make(map[InfoHash]*torrent)
	}
	return s
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// secs converts now to the stored 32-bit form: Unix seconds, which last
// until 2106 and cost a peer 4 bytes instead of a 24-byte time.Time.
func (s *MemStore) secs(now time.Time) uint32 {
	u := now.Unix()
	if u < 0 {
		return 0
	}
	return uint32(u)
}

func (s *MemStore) shard(h InfoHash) *memShard {
	return &s.shards[(uint32(h[0])<<8|uint32(h[1]))%s.nshards]
}

// Announce implements Store.
func (s *MemStore) Announce(now time.Time, a *PeerAnnounce, dst []Peer) ([]Peer, Swarm, error) {
	ts := s.secs(now)
	sh := s.shard(a.InfoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()

	t := sh.torrents[a.InfoHash]
	if t != nil {
		s.expire(sh, t, ts)
	}
	if a.Event == EventStopped {
		if t == nil {
			return dst, Swarm{}, nil
		}
		if i, ok := t.find(a.PeerID); ok {
			p := &t.peers[i]
			if p.key != 0 && p.key != a.Key && p.addr() != a.Addr {
				return dst, t.swarm(), ErrPeerIDInUse
			}
			s.removePeer(sh, t, i)
		}
		return dst, t.swarm(), nil
	}
	if t == nil {
		if len(sh.torrents) >= s.maxTor {
			s.evictTorrent(sh, sh.oldest)
		}
		t = &torrent{hash: a.InfoHash, oldestPeer: -1, newestPeer: -1}
		sh.torrents[a.InfoHash] = t
		sh.pushTorrent(t)
	}
	t.seen = ts
	sh.touchTorrent(t)

	i, ok := t.find(a.PeerID)
	if ok {
		p := &t.peers[i]
		if p.key != 0 && p.key != a.Key && p.addr() != a.Addr {
			return dst, t.swarm(), ErrPeerIDInUse
		}
		if a.Event == EventCompleted && !p.seeder {
			t.downloaded++
		}
		if p.seeder != a.Seeder {
			d := int32(1)
			if !a.Seeder {
				d = -1
			}
			t.seeders += d
			sh.seeders += int(d)
		}
		p.setAddr(a.Addr)
		p.seeder = a.Seeder
		p.key = a.Key
		p.seen = ts
		t.unlink(i)
		t.linkNewest(i)
	} else {
		if len(t.peers) >= s.maxPer {
			s.evictPeer(sh, t)
		}
		for sh.peers >= s.maxPeer && sh.oldest != nil {
			o := sh.oldest
			if len(o.peers) == 0 {
				if o == t {
					break
				}
				s.evictTorrent(sh, o)
				continue
			}
			s.evictPeer(sh, o)
		}
		if a.Event == EventCompleted {
			t.downloaded++
		}
		i = int32(len(t.peers))
		if len(t.peers) == cap(t.peers) {
			// Grow by a quarter rather than append's doubling: most
			// swarms are small and stay at the size they reach, so the
			// slack would be a large share of their memory.
			t.peers = slices.Grow(t.peers, max(4, len(t.peers)/4))
		}
		t.peers = append(t.peers, storedPeer{id: a.PeerID, seeder: a.Seeder, key: a.Key, seen: ts})
		t.peers[i].setAddr(a.Addr)
		t.indexed(a.PeerID, i)
		t.linkNewest(i)
		sh.peers++
		if a.Seeder {
			t.seeders++
			sh.seeders++
		}
	}
	return t.pick(dst, i, a.NumWant, a.Seeder), t.swarm(), nil
}

// Scrape implements Store.
func (s *MemStore) Scrape(now time.Time, h InfoHash) Swarm {
	ts := s.secs(now)
	sh := s.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := sh.torrents[h]
	if t == nil {
		return Swarm{}
	}
	s.expire(sh, t, ts)
	return t.swarm()
}

// Sweep implements Store. Torrents are visited oldest-announced first and
// the walk stops at the first torrent announced within the TTL: every peer
// of an older torrent is expired, and torrents touched since are expired
// lazily by their own announces.
func (s *MemStore) Sweep(now time.Time) {
	ts := s.secs(now)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for t := sh.oldest; t != nil && !s.fresh(t.seen, ts); t = sh.oldest {
			sh.expired += uint64(len(t.peers))
			s.dropTorrent(sh, t)
		}
		sh.mu.Unlock()
	}
}

// Stats implements Store.
func (s *MemStore) Stats() StoreStats {
	var st StoreStats
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		st.Torrents += len(sh.torrents)
		st.Peers += sh.peers
		st.Seeders += sh.seeders
		st.ExpiredPeers += sh.expired
		st.EvictedPeers += sh.evictedPeers
		st.EvictedTorrents += sh.evictedTorr
		sh.mu.Unlock()
	}
	st.Leechers = st.Peers - st.Seeders
	return st
}

func (s *MemStore) fresh(seen, now uint32) bool {
	return now < seen || now-seen < s.ttl
}

// expire drops t's peers that are past the TTL, oldest first.
func (s *MemStore) expire(sh *memShard, t *torrent, now uint32) {
	for t.oldestPeer >= 0 && !s.fresh(t.peers[t.oldestPeer].seen, now) {
		s.removePeer(sh, t, t.oldestPeer)
		sh.expired++
	}
}

func (s *MemStore) evictPeer(sh *memShard, t *torrent) {
	if t.oldestPeer < 0 {
		return
	}
	s.removePeer(sh, t, t.oldestPeer)
	sh.evictedPeers++
}

func (s *MemStore) evictTorrent(sh *memShard, t *torrent) {
	if t == nil {
		return
	}
	sh.evictedPeers += uint64(len(t.peers))
	sh.evictedTorr++
	s.dropTorrent(sh, t)
}

func (s *MemStore) dropTorrent(sh *memShard, t *torrent) {
	sh.peers -= len(t.peers)
	sh.seeders -= int(t.seeders)
	sh.unlinkTorrent(t)
	delete(sh.torrents, t.hash)
}

// removePeer deletes record i by moving the last record into its slot, which
// keeps the slice dense so peer selection can index it directly.
func (s *MemStore) removePeer(sh *memShard, t *torrent, i int32) {
	p := &t.peers[i]
	if p.seeder {
		t.seeders--
		sh.seeders--
	}
	sh.peers--
	if t.index != nil {
		delete(t.index, p.id)
	}
	t.unlink(i)
	last := int32(len(t.peers) - 1)
	if i != last {
		t.peers[i] = t.peers[last]
		m := &t.peers[i]
		if t.index != nil {
			t.index[m.id] = i
		}
		if m.prev >= 0 {
			t.peers[m.prev].next = i
		} else {
			t.oldestPeer = i
		}
		if m.next >= 0 {
			t.peers[m.next].prev = i
		} else {
			t.newestPeer = i
		}
	}
	t.peers = t.peers[:last]
	if t.index != nil && len(t.peers) < indexMin/2 {
		t.index = nil
	}
	// Give memory back once a swarm has shrunk well below its capacity, so
	// a burst cannot pin its peak size forever.
	if c := cap(t.peers); c > 64 && len(t.peers) < c/4 {
		t.peers = append(make([]storedPeer, 0, c/2), t.peers...)
	}
}

// indexMin is the swarm size from which peers are found through a map.
const indexMin = 16

// find returns the record of the peer with id.
func (t *torrent) find(id PeerID) (int32, bool) {
	if t.index != nil {
		i, ok := t.index[id]
		return i, ok
	}
	for i := range t.peers {
		if t.peers[i].id == id {
			return int32(i), true
		}
	}
	return -1, false
}

// indexed records that the new peer id is at record i, building the index
// when the swarm reaches indexMin.
func (t *torrent) indexed(id PeerID, i int32) {
	switch {
	case t.index != nil:
		t.index[id] = i
	case len(t.peers) >= indexMin:
		t.index = make(map[PeerID]int32, len(t.peers))
		for j := range t.peers {
			t.index[t.peers[j].id] = int32(j)
		}
	}
}

func (t *torrent) swarm() Swarm {
	return Swarm{
		Complete:   int(t.seeders),
		Incomplete: len(t.peers) - int(t.seeders),
		Downloaded: int(t.downloaded),
	}
}

func (t *torrent) unlink(i int32) {
	p := &t.peers[i]
	if p.prev >= 0 {
		t.peers[p.prev].next = p.next
	} else {
		t.oldestPeer = p.next
	}
	if p.next >= 0 {
		t.peers[p.next].prev = p.prev
	} else {
		t.newestPeer = p.prev
	}
	p.prev, p.next = -1, -1
}

func (t *torrent) linkNewest(i int32) {
	p := &t.peers[i]
	p.prev, p.next = t.newestPeer, -1
	if t.newestPeer >= 0 {
		t.peers[t.newestPeer].next = i
	} else {
		t.oldestPeer = i
	}
	t.newestPeer = i
}

// pick appends up to n peers other than record self to dst. It walks the
// slice from a random start with a random stride coprime to its length,
// which visits every record once in a shuffled order without allocating.
// Seeders get only leechers, since seeders have nothing to give each other.
func (t *torrent) pick(dst []Peer, self int32, n int, seeder bool) []Peer {
	l := uint64(len(t.peers))
	if n <= 0 || l <= 1 {
		return dst
	}
	start := rand.Uint64N(l)
	stride := uint64(1)
	if l > 2 {
		for {
			stride = 1 + rand.Uint64N(l-1)
			if gcd(stride, l) == 1 {
				break
			}
		}
	}
	idx := start
	for range l {
		if int32(idx) != self {
			p := &t.peers[idx]
			if !(seeder && p.seeder) {
				dst = append(dst, Peer{ID: p.id, Addr: p.addr()})
				if n--; n == 0 {
					break
				}
			}
		}
		idx = (idx + stride) % l
	}
	return dst
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (p *storedPeer) setAddr(a netip.AddrPort) {
	p.ip = a.Addr().As16()
	p.port = a.Port()
}

func (p *storedPeer) addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(p.ip).Unmap(), p.port)
}

func (sh *memShard) pushTorrent(t *torrent) {
	t.older, t.newer = sh.newest, nil
	if sh.newest != nil {
		sh.newest.newer = t
	} else {
		sh.oldest = t
	}
	sh.newest = t
}

func (sh *memShard) unlinkTorrent(t *torrent) {
	if t.older != nil {
		t.older.newer = t.newer
	} else {
		sh.oldest = t.newer
	}
	if t.newer != nil {
		t.newer.older = t.older
	} else {
		sh.newest = t.older
	}
	t.older, t.newer = nil, nil
}

func (sh *memShard) touchTorrent(t *torrent) {
	if sh.newest == t {
		return
	}
	sh.unlinkTorrent(t)
	sh.pushTorrent(t)
}
