package tracker

import (
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"runtime"
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

// Default caps of MemStoreConfig. At about 36 bytes per stored peer
// (swarms of 10 or more, headers and indexes included) the peer cap bounds
// the store to roughly 40 MB.
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
// A swarm keeps its peers in two dense, pointer-free lists, one per address
// family: a 20-byte record per IPv4 peer (keyed hash of the peer ID,
// address, port, last announce as Unix seconds, BEP 7 key hash and seeder
// flag) and 32 bytes per IPv6 peer. The lists, their indexes and the
// torrent headers live in per-shard arenas mapped outside the Go heap (see
// arena and allocRegion), so the collector neither scans them nor sizes
// its headroom by them, and a list is sized in records, not in an
// allocator's size classes. The peer ID
// itself is not kept: replies never carry it (see Server), and its 48-bit
// hash under a per-process random key tells peers apart for re-announces,
// stops and the BEP 7 key check. Removal moves the last record into the
// freed slot, keeping each array dense for sampling. Swarms of indexMin
// peers or more find a peer through an open-addressing table of 4-byte
// slot numbers (5–16 bytes per peer); smaller ones scan, which is as quick.
// Expiry scans a swarm only once its oldest possible peer is past the TTL,
// so it costs O(swarm) at most once a second per swarm, and a full swarm
// evicts its oldest peer (exactly in small swarms, the oldest of a random
// sample in large ones).
type MemStore struct {
	shards  []memShard
	nshards uint32
	ttl     uint32 // seconds
	maxPer  int
	maxTor  int // per shard
	maxPeer int // per shard
}

type memShard struct {
	mu     sync.Mutex
	swarms swarmTable
	// a4, a6 and ai hold the records of the shard's IPv4 and IPv6 peers
	// and the indexes of its large swarms.
	a4           arena[packedPeer[[4]byte]]
	a6           arena[packedPeer[[16]byte]]
	ai           arena[uint32]
	peers        int
	seeders      int
	expired      uint64
	evictedPeers uint64
	evictedTorr  uint64
	_            [64]byte // keep hot shard fields on separate cache lines
}

// peerSeeder is the bit of peerHead.keyFlags that marks a peer that
// announced left=0; the other 31 bits are its BEP 7 key hash.
const peerSeeder = 1 << 31

// peerHead is the part of a packed peer record common to both families:
// 16 bytes, so an IPv4 record is 20 and an IPv6 one 32.
type peerHead struct {
	// id is the keyed hash of the peer ID: 6 bytes instead of 20. Under
	// a random per-process key, two peer IDs of a swarm of n share it
	// with odds of about n²/2⁴⁹ (under 1 in 200,000 at the 50,000-peer
	// cap), and it doubles as the index's hash.
	id   peerKey
	port uint16
	seen uint32 // Unix seconds of the last announce
	// keyFlags is the BEP 7 key hash (keyBits, 0 for none) with the
	// seeder flag in the top bit, which saves a record its padding.
	keyFlags uint32
}

func (h *peerHead) seeder() bool { return h.keyFlags&peerSeeder != 0 }

func (h *peerHead) key() uint32 { return h.keyFlags &^ peerSeeder }

// keyBits is the 31-bit form of a BEP 7 key hash that a record keeps: a
// hash whose low 31 bits are all zero maps to 1, since 0 means no key.
func keyBits(k uint32) uint32 {
	if k == 0 {
		return 0
	}
	return max(1, k&^peerSeeder)
}

// addrBytes is the stored form of an address: 4 bytes for IPv4, 16 for
// IPv6, so IPv4 peers do not pay for IPv6's width.
type addrBytes interface{ [4]byte | [16]byte }

// packedPeer is one stored peer: no pointers and no strings.
type packedPeer[A addrBytes] struct {
	peerHead
	ip A
}

// torrent is a swarm's header, held by value in its shard's swarmTable:
// 84 bytes and no pointer, so the slab can live outside the Go heap.
type torrent struct {
	hash    InfoHash
	seeders int32
	seen    uint32
	// minSeen is at most the oldest peer's last announce: expire scans
	// the swarm only when even this is past the TTL.
	minSeen uint32
	// older and newer are the slots of the torrent's neighbours in the
	// shard's list by last announce, noSlot at its ends.
	older, newer int32
	downloaded   counter64
	v4, v6       peerList
}

// counter64 is a 64-bit count in two 32-bit words, so that it does not
// make the header 8-byte aligned and pad it.
type counter64 [2]uint32

func (c *counter64) get() uint64 { return uint64(c[1])<<32 | uint64(c[0]) }

func (c *counter64) inc() {
	c[0]++
	if c[0] == 0 {
		c[1]++
	}
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
		sh := &s.shards[i]
		sh.swarms = newSwarmTable()
		sh.a4.segs = func(yield func(*uint32, uint32, uint32) bool) {
			for i := range sh.swarms.slab {
				if l := &sh.swarms.slab[i].v4; l.size != 0 && !yield(&l.off, l.n, l.size) {
					return
				}
			}
		}
		sh.a6.segs = func(yield func(*uint32, uint32, uint32) bool) {
			for i := range sh.swarms.slab {
				if l := &sh.swarms.slab[i].v6; l.size != 0 && !yield(&l.off, l.n, l.size) {
					return
				}
			}
		}
		sh.ai.segs = func(yield func(*uint32, uint32, uint32) bool) {
			for i := range sh.swarms.slab {
				t := &sh.swarms.slab[i]
				for _, l := range [2]*peerList{&t.v4, &t.v6} {
					if l.bits != 0 && !yield(&l.idx, 1<<l.bits, 1<<l.bits) {
						return
					}
				}
			}
		}
	}
	// The arenas and slabs are outside the Go heap: unmap them once the
	// store is unreachable.
	runtime.AddCleanup(s, freeShards, s.shards)
	return s
}

// freeShards unmaps the memory of an unreachable store's shards. It takes
// each shard's lock: a method still running on a shard (its receiver may
// be dead before it returns) holds it while it touches the regions.
func freeShards(shards []memShard) {
	for i := range shards {
		sh := &shards[i]
		sh.mu.Lock()
		sh.a4.free()
		sh.a6.free()
		sh.ai.free()
		sh.swarms.free()
		sh.mu.Unlock()
	}
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
	ip := a.Addr.Addr().Unmap()
	addr := netip.AddrPortFrom(ip, a.Addr.Port())
	sh := s.shard(a.InfoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()

	ti := sh.swarms.find(&a.InfoHash)
	var t *torrent
	if ti != noSlot {
		t = sh.swarms.at(ti)
		s.expire(sh, t, ts)
	}
	if a.Event == EventStopped {
		if t == nil {
			return dst, Swarm{}, nil
		}
		if r, ok := sh.find(t, keyOf(&a.PeerID)); ok {
			h := sh.head(t, r)
			if h.key() != 0 && h.key() != keyBits(a.Key) && sh.addr(t, r) != addr {
				return dst, t.swarm(), ErrPeerIDInUse
			}
			s.removePeer(sh, t, r)
		}
		return dst, t.swarm(), nil
	}
	if t == nil {
		if sh.swarms.len() >= s.maxTor {
			s.evictTorrent(sh, sh.swarms.oldest)
		}
		ti = sh.swarms.insert(a.InfoHash)
		t = sh.swarms.at(ti)
	} else {
		sh.swarms.touch(ti)
	}
	t.seen = ts

	kf := keyBits(a.Key)
	if a.Seeder {
		kf |= peerSeeder
	}
	id := keyOf(&a.PeerID)
	head := peerHead{id: id, port: addr.Port(), seen: ts, keyFlags: kf}
	r, ok := sh.find(t, id)
	if ok {
		h := sh.head(t, r)
		if h.key() != 0 && h.key() != keyBits(a.Key) && sh.addr(t, r) != addr {
			return dst, t.swarm(), ErrPeerIDInUse
		}
		if a.Event == EventCompleted && !h.seeder() {
			t.downloaded.inc()
		}
		if h.seeder() != a.Seeder {
			d := int32(1)
			if !a.Seeder {
				d = -1
			}
			t.seeders += d
			sh.seeders += int(d)
		}
		if r.v6 == !ip.Is4() {
			// Same family: rewrite the record in place.
			sh.put(t, r, head, ip)
		} else {
			// The peer moved to the other family: its record moves too.
			sh.remove(t, r)
			r = sh.add(t, head, ip)
		}
	} else {
		if t.count() >= s.maxPer {
			s.evictPeer(sh, t)
		}
		for sh.peers >= s.maxPeer && sh.swarms.oldest != noSlot {
			oi := sh.swarms.oldest
			o := sh.swarms.at(oi)
			if o.count() == 0 {
				if oi == ti {
					break
				}
				// Dropping o moves another header into its slot and may
				// shrink the slab: follow t.
				if s.evictTorrent(sh, oi) == ti {
					ti = oi
				}
				t = sh.swarms.at(ti)
				continue
			}
			s.evictPeer(sh, o)
		}
		if a.Event == EventCompleted {
			t.downloaded.inc()
		}
		if t.count() == 0 || ts < t.minSeen {
			t.minSeen = ts
		}
		r = sh.add(t, head, ip)
		sh.peers++
		if a.Seeder {
			t.seeders++
			sh.seeders++
		}
	}
	return sh.pick(t, dst, t.flat(r), a.NumWant, a.Seeder), t.swarm(), nil
}

// Scrape implements Store.
func (s *MemStore) Scrape(now time.Time, h InfoHash) Swarm {
	ts := s.secs(now)
	sh := s.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ti := sh.swarms.find(&h)
	if ti == noSlot {
		return Swarm{}
	}
	t := sh.swarms.at(ti)
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
		for i := sh.swarms.oldest; i != noSlot && !s.fresh(sh.swarms.at(i).seen, ts); i = sh.swarms.oldest {
			sh.expired += uint64(sh.swarms.at(i).count())
			s.dropTorrent(sh, i)
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
		st.Torrents += sh.swarms.len()
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

// expire drops t's peers that are past the TTL. It scans the swarm only
// when minSeen says some peer may be, and leaves minSeen exact.
func (s *MemStore) expire(sh *memShard, t *torrent, now uint32) {
	if t.count() == 0 || s.fresh(t.minSeen, now) {
		return
	}
	oldest := now
	// Walk backwards: a removal moves the last record, already visited,
	// into the freed slot.
	// (A removal may move the arena: records are read by slot each time.)
	for i := int32(t.v4.n) - 1; i >= 0; i-- {
		if seen := sh.head(t, peerRef{i: i}).seen; !s.fresh(seen, now) {
			s.removePeer(sh, t, peerRef{i: i})
			sh.expired++
		} else {
			oldest = min(oldest, seen)
		}
	}
	for i := int32(t.v6.n) - 1; i >= 0; i-- {
		if seen := sh.head(t, peerRef{v6: true, i: i}).seen; !s.fresh(seen, now) {
			s.removePeer(sh, t, peerRef{v6: true, i: i})
			sh.expired++
		} else {
			oldest = min(oldest, seen)
		}
	}
	t.minSeen = oldest
}

func (s *MemStore) evictPeer(sh *memShard, t *torrent) {
	if t.count() == 0 {
		return
	}
	s.removePeer(sh, t, sh.oldestPeer(t))
	sh.evictedPeers++
}

// evictTorrent drops the torrent at slot i, if any, and returns the slot
// of the header moved into i, as swarmTable.remove does.
func (s *MemStore) evictTorrent(sh *memShard, i int32) int32 {
	if i == noSlot {
		return noSlot
	}
	sh.evictedPeers += uint64(sh.swarms.at(i).count())
	sh.evictedTorr++
	return s.dropTorrent(sh, i)
}

func (s *MemStore) dropTorrent(sh *memShard, i int32) int32 {
	t := sh.swarms.at(i)
	sh.peers -= t.count()
	sh.seeders -= int(t.seeders)
	sh.freeLists(t)
	return sh.swarms.remove(i)
}

// removePeer deletes the peer at r and updates the counts.
func (s *MemStore) removePeer(sh *memShard, t *torrent, r peerRef) {
	if sh.head(t, r).seeder() {
		t.seeders--
		sh.seeders--
	}
	sh.peers--
	sh.remove(t, r)
}

// peerRef locates a peer record: its family and slot.
type peerRef struct {
	v6 bool
	i  int32
}

func (t *torrent) count() int { return int(t.v4.n) + int(t.v6.n) }

// v4 and v6 return views of t's lists in sh's arenas.
func (sh *memShard) v4(t *torrent) listView[[4]byte] {
	return listView[[4]byte]{l: &t.v4, a: &sh.a4, ai: &sh.ai}
}

func (sh *memShard) v6(t *torrent) listView[[16]byte] {
	return listView[[16]byte]{l: &t.v6, a: &sh.a6, ai: &sh.ai}
}

func (sh *memShard) find(t *torrent, id peerKey) (peerRef, bool) {
	if i := sh.v4(t).find(id); i >= 0 {
		return peerRef{i: i}, true
	}
	if t.v6.n != 0 {
		if i := sh.v6(t).find(id); i >= 0 {
			return peerRef{v6: true, i: i}, true
		}
	}
	return peerRef{}, false
}

// head returns r's record head, valid until the shard's next change.
func (sh *memShard) head(t *torrent, r peerRef) *peerHead {
	if r.v6 {
		return &sh.a6.buf[t.v6.off+uint32(r.i)].peerHead
	}
	return &sh.a4.buf[t.v4.off+uint32(r.i)].peerHead
}

func (sh *memShard) addr(t *torrent, r peerRef) netip.AddrPort {
	if r.v6 {
		p := &sh.a6.buf[t.v6.off+uint32(r.i)]
		return netip.AddrPortFrom(netip.AddrFrom16(p.ip), p.port)
	}
	p := &sh.a4.buf[t.v4.off+uint32(r.i)]
	return netip.AddrPortFrom(netip.AddrFrom4(p.ip), p.port)
}

// put rewrites r's record in place: the peer stays in its family.
func (sh *memShard) put(t *torrent, r peerRef, h peerHead, ip netip.Addr) {
	if r.v6 {
		sh.a6.buf[t.v6.off+uint32(r.i)] = packedPeer[[16]byte]{h, ip.As16()}
	} else {
		sh.a4.buf[t.v4.off+uint32(r.i)] = packedPeer[[4]byte]{h, ip.As4()}
	}
}

// remove drops r's record from its family's list.
func (sh *memShard) remove(t *torrent, r peerRef) {
	if r.v6 {
		sh.v6(t).remove(r.i)
	} else {
		sh.v4(t).remove(r.i)
	}
}

// add stores a new record for ip (already unmapped) in its family's list.
func (sh *memShard) add(t *torrent, h peerHead, ip netip.Addr) peerRef {
	if ip.Is4() {
		return peerRef{i: sh.v4(t).add(packedPeer[[4]byte]{h, ip.As4()})}
	}
	return peerRef{v6: true, i: sh.v6(t).add(packedPeer[[16]byte]{h, ip.As16()})}
}

// freeLists releases t's records and indexes, before t goes.
func (sh *memShard) freeLists(t *torrent) {
	sh.v4(t).free()
	sh.v6(t).free()
}

// flat numbers r in the concatenation of the IPv4 and IPv6 lists that
// pick walks.
func (t *torrent) flat(r peerRef) int {
	if r.v6 {
		return int(t.v4.n) + int(r.i)
	}
	return int(r.i)
}

// oldestSample is how many random records a large swarm compares to find
// a peer to evict: scanning 50,000 records per eviction would let a flood
// of new peer IDs at a full swarm cost O(swarm) each.
const oldestSample = 16

// oldestPeer returns the least recently announced peer of a small swarm,
// or the oldest of oldestSample random peers of a large one.
func (sh *memShard) oldestPeer(t *torrent) peerRef {
	n4, n := int(t.v4.n), t.count()
	exact := n <= 4*oldestSample
	tries := n
	if !exact {
		tries = oldestSample
	}
	var best peerRef
	var bestSeen uint32
	for j := range tries {
		k := j
		if !exact {
			k = rand.IntN(n)
		}
		r := peerRef{i: int32(k)}
		if k >= n4 {
			r = peerRef{v6: true, i: int32(k - n4)}
		}
		if s := sh.head(t, r).seen; j == 0 || s < bestSeen {
			best, bestSeen = r, s
		}
	}
	return best
}

func (t *torrent) swarm() Swarm {
	return Swarm{
		Complete:   int(t.seeders),
		Incomplete: t.count() - int(t.seeders),
		Downloaded: int(t.downloaded.get()),
	}
}

// pick appends up to n peers of t other than flat record self to dst. It
// walks the IPv4 then IPv6 records from a random start with a random
// stride coprime to their number, which visits every record once in a
// shuffled order without allocating. Seeders get only leechers, since
// seeders have nothing to give each other.
func (sh *memShard) pick(t *torrent, dst []Peer, self int, n int, seeder bool) []Peer {
	p4, p6 := sh.v4(t).peers(), sh.v6(t).peers()
	n4 := uint64(len(p4))
	l := uint64(t.count())
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
		if int(idx) != self {
			if idx < n4 {
				p := &p4[idx]
				if !(seeder && p.seeder()) {
					dst = append(dst, Peer{Addr: netip.AddrPortFrom(netip.AddrFrom4(p.ip), p.port)})
					n--
				}
			} else {
				p := &p6[idx-n4]
				if !(seeder && p.seeder()) {
					dst = append(dst, Peer{Addr: netip.AddrPortFrom(netip.AddrFrom16(p.ip), p.port)})
					n--
				}
			}
			if n == 0 {
				break
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

// indexMin is the swarm size from which peers are found through the index.
const indexMin = 16

// peerSeed keys the peer ID hash; random per process, so peer IDs chosen
// to collide (to take over another peer's entry) cannot be precomputed.
var peerSeed = maphash.MakeSeed()

// peerKey is 48 bits of a peer ID's keyed hash as three 16-bit words, so
// that it fills a record's first 6 bytes and the port the next 2, with no
// padding anywhere.
type peerKey [3]uint16

func keyOf(id *PeerID) peerKey {
	h := maphash.Bytes(peerSeed, id[:])
	return peerKey{uint16(h), uint16(h >> 16), uint16(h >> 32)}
}

// slot is k's home position in an index of mask+1 entries (at most 2³²).
func (k peerKey) slot(mask uint64) uint64 { return (uint64(k[1])<<16 | uint64(k[0])) & mask }

// peerList is where one address family's peers of a swarm live in the
// shard's arena for that family: n records in use from off, of a segment
// of size records. Swarms of indexMin peers or more also have an
// open-addressing table of slot+1 (0 for empty) in the shard's index
// arena, from idx, of 2^bits entries; bits is 0 without one.
type peerList struct {
	off, n, size uint32
	idx          uint32
	bits         uint8
}

// listView is a peerList with the arenas it lives in. Slices it returns
// are valid until the list or shard next changes.
type listView[A addrBytes] struct {
	l  *peerList
	a  *arena[packedPeer[A]]
	ai *arena[uint32]
}

func (v listView[A]) peers() []packedPeer[A] {
	l := v.l
	return v.a.buf[l.off : l.off+l.n : l.off+l.n]
}

// index returns the list's index table, nil when it has none.
func (v listView[A]) index() []uint32 {
	if v.l.bits == 0 {
		return nil
	}
	return v.ai.buf[v.l.idx : v.l.idx+1<<v.l.bits]
}

// find returns the slot of the peer whose ID hashes to id, or -1.
func (v listView[A]) find(id peerKey) int32 {
	ps := v.peers()
	idx := v.index()
	if idx == nil {
		for i := range ps {
			if ps[i].id == id {
				return int32(i)
			}
		}
		return -1
	}
	mask := uint64(len(idx) - 1)
	for j := id.slot(mask); ; j = (j + 1) & mask {
		s := idx[j]
		if s == 0 {
			return -1
		}
		if ps[s-1].id == id {
			return int32(s - 1)
		}
	}
}

// add appends p and returns its slot.
func (v listView[A]) add(p packedPeer[A]) int32 {
	l := v.l
	if l.n == l.size {
		// Grow by a quarter, not doubling: most swarms are small and
		// stay at the size they reach, so the slack would be a large
		// share of their memory. A lone peer, the commonest swarm,
		// gets room for itself only.
		extra := max(2, l.n/4)
		if l.n < 2 {
			extra = 1
		}
		v.resize(l.n + extra)
	}
	v.a.buf[l.off+l.n] = p
	l.n++
	i := int32(l.n - 1)
	switch {
	case l.bits != 0 && l.n*4 > 3<<l.bits:
		v.reindex()
	case l.bits != 0:
		v.indexSlot(i)
	case l.n >= indexMin:
		v.reindex()
	}
	return i
}

// resize gives the list a segment of size records, at least its length:
// in place at the arena's top or when shrinking (the tail is freed),
// otherwise by moving it.
func (v listView[A]) resize(size uint32) {
	l := v.l
	switch {
	case size == l.size:
	case size < l.size:
		tail, n := l.off+size, l.size-size
		l.size = size
		v.a.release(tail, n)
	case l.size == 0:
		l.off, l.size = v.a.alloc(size), size
	case v.a.extend(l.off, l.size, size):
		l.size = size
	default:
		// alloc may rebuild the arena, which moves this list too: read
		// its offset after.
		off := v.a.alloc(size)
		copy(v.a.buf[off:off+l.n], v.a.buf[l.off:l.off+l.n])
		old, oldSize := l.off, l.size
		l.off, l.size = off, size
		v.a.release(old, oldSize)
	}
}

// reindex rebuilds the index at a load of a half to a quarter, or drops it
// when the list is small enough to scan.
func (v listView[A]) reindex() {
	l := v.l
	if l.bits != 0 {
		off, n := l.idx, uint32(1)<<l.bits
		l.idx, l.bits = 0, 0
		v.ai.release(off, n)
	}
	if l.n < indexMin/2 {
		return
	}
	bits := uint8(5)
	for 1<<bits < 2*l.n {
		bits++
	}
	off := v.ai.alloc(1 << bits)
	clear(v.ai.buf[off : off+1<<bits])
	l.idx, l.bits = off, bits
	for i := range l.n {
		v.indexSlot(int32(i))
	}
}

func (v listView[A]) indexSlot(i int32) {
	idx := v.index()
	mask := uint64(len(idx) - 1)
	j := v.a.buf[v.l.off+uint32(i)].id.slot(mask)
	for idx[j] != 0 {
		j = (j + 1) & mask
	}
	idx[j] = uint32(i) + 1
}

// indexPos returns the index position holding slot i.
func (v listView[A]) indexPos(i int32) uint64 {
	idx := v.index()
	mask := uint64(len(idx) - 1)
	j := v.a.buf[v.l.off+uint32(i)].id.slot(mask)
	for idx[j] != uint32(i)+1 {
		j = (j + 1) & mask
	}
	return j
}

// unindex empties index position i and shifts later entries of its probe
// run back, so lookups need no tombstones.
func (v listView[A]) unindex(i uint64) {
	idx, ps := v.index(), v.peers()
	mask := uint64(len(idx) - 1)
	j := i
	for {
		j = (j + 1) & mask
		s := idx[j]
		if s == 0 {
			break
		}
		k := ps[s-1].id.slot(mask)
		// Entry j stays if its home k lies cyclically in (i, j].
		if i <= j {
			if i < k && k <= j {
				continue
			}
		} else if i < k || k <= j {
			continue
		}
		idx[i] = s
		i = j
	}
	idx[i] = 0
}

// remove deletes slot i by moving the last record into it, which keeps the
// list dense so peer selection can index it directly.
func (v listView[A]) remove(i int32) {
	l := v.l
	last := int32(l.n - 1)
	if l.bits != 0 {
		v.unindex(v.indexPos(i))
		if i != last {
			v.index()[v.indexPos(last)] = uint32(i) + 1
		}
	}
	ps := v.peers()
	ps[i] = ps[last]
	l.n--
	switch {
	case l.n == 0:
		// An emptied list gives back its segment: most swarms have no
		// IPv6 peer, and an emptied swarm is soon dropped.
		v.free()
		return
	case l.size > 64 && l.n < l.size/4:
		// Give memory back once a swarm has shrunk well below its
		// capacity, so a burst cannot pin its peak size forever.
		v.resize(l.size / 2)
	}
	if l.bits != 0 && (l.n < indexMin/2 || l.bits > 5 && l.n*8 < 1<<l.bits) {
		v.reindex()
	}
}

// free releases the list's records and index.
func (v listView[A]) free() {
	l := v.l
	off, size, idx, bits := l.off, l.size, l.idx, l.bits
	*l = peerList{}
	v.a.release(off, size)
	if bits != 0 {
		v.ai.release(idx, 1<<bits)
	}
}
