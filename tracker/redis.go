package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// errStoreUnavailable answers announces and scrapes while the shared store
// cannot be reached; the server adds a short "retry in" so clients come
// back soon instead of at their next regular interval.
const errStoreUnavailable failure = "tracker store unavailable, retry shortly"

// DefaultRedisTimeout bounds every round trip to Redis, including the
// dial, so that a dead or stalled Redis turns into a quick failure reason
// rather than a client left hanging.
const DefaultRedisTimeout = 500 * time.Millisecond

// RedisStoreConfig configures NewRedisStore; zero fields take defaults.
type RedisStoreConfig struct {
	// URL is redis://[:PASSWORD@]HOST:PORT/DB, rediss:// for TLS, or
	// unix://[:PASSWORD@]/PATH?db=N.
	URL string
	// Prefix starts every key the store writes (default "shoal:"), so
	// that several trackers, or other users, can share one database.
	Prefix string
	// PeerTTL is how long a peer stays without announcing (default
	// DefaultPeerTTL).
	PeerTTL time.Duration
	// MaxPeersPerTorrent caps one swarm (default
	// DefaultMaxPeersPerTorrent); a new peer at a full swarm evicts the
	// peer closest to expiry. Redis's own maxmemory bounds the rest.
	MaxPeersPerTorrent int
	// Timeout bounds each round trip (default DefaultRedisTimeout).
	Timeout time.Duration
	// Logger receives the store's up/down transitions; nil discards them.
	Logger *slog.Logger
}

// RedisStore is a Store kept in Redis, so that several tracker instances
// given the same URL serve the same swarms.
//
// A swarm is four sorted sets, seeders and leechers per address family,
// whose members are peer ids scored by expiry (Unix seconds), and one hash
// from peer id to the peer's flags, BEP 7 key and address. An announce is
// one EVALSHA of a Lua script, so it is one round trip and atomic: it drops
// the swarm's expired peers (ZRANGEBYSCORE/ZREMRANGEBYSCORE), records the
// peer, and draws the reply with ZRANDMEMBER, which costs O(numwant)
// rather than O(swarm). Store-wide counts live in a hash the scripts keep
// up to date, and a sorted set of torrents by expiry lets Sweep find idle
// swarms without scanning the keyspace.
type RedisStore struct {
	rdb     *redis.Client
	prefix  string
	ttl     int64 // seconds
	maxPer  int
	timeout time.Duration
	log     *slog.Logger

	keyTorrents string
	keyStats    string
	keyLists    string

	up       atomic.Bool
	failures atomic.Uint64
	lastErr  atomic.Pointer[string]
	stateMu  sync.Mutex // orders up/down log lines
}

// NewRedisStore parses cfg.URL and returns a store on it. It does not wait
// for Redis: a tracker started while Redis is down answers with failure
// reasons until Redis comes up.
func NewRedisStore(cfg RedisStoreConfig) (*RedisStore, error) {
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis store %q: %w", redactURL(cfg.URL), err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRedisTimeout
	}
	if cfg.PeerTTL <= 0 {
		cfg.PeerTTL = DefaultPeerTTL
	}
	if cfg.MaxPeersPerTorrent <= 0 {
		cfg.MaxPeersPerTorrent = DefaultMaxPeersPerTorrent
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "shoal:"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	quietRedisOnce.Do(func() { redis.SetLogger(quietLogger{}) })
	opt.DialTimeout = cfg.Timeout
	opt.ReadTimeout = cfg.Timeout
	opt.WriteTimeout = cfg.Timeout
	opt.PoolTimeout = cfg.Timeout
	// A retry would stretch a failing announce past the timeout; the
	// client's own retry is the retry.
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	r := &RedisStore{
		rdb:         redis.NewClient(opt),
		prefix:      cfg.Prefix,
		ttl:         int64(max(1, (cfg.PeerTTL+time.Second-1)/time.Second)),
		maxPer:      cfg.MaxPeersPerTorrent,
		timeout:     cfg.Timeout,
		log:         cfg.Logger,
		keyTorrents: cfg.Prefix + "torrents",
		keyStats:    cfg.Prefix + "stats",
		keyLists:    cfg.Prefix + "lists",
	}
	r.up.Store(true)
	return r, nil
}

// quietLogger silences go-redis's own log, which would print a line per
// failed dial to stderr while Redis is down; the store logs the up and
// down transitions instead, and /stats has the latest error.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

var quietRedisOnce sync.Once

// redactURL hides a password in a store URL for error messages and logs.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = "***@" + rest[at+1:]
	}
	return scheme + "://" + rest
}

// Close closes the store's connections.
func (r *RedisStore) Close() error { return r.rdb.Close() }

// Ping checks that Redis answers, within the store's timeout.
func (r *RedisStore) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.result(r.rdb.Ping(ctx).Err())
}

func (r *RedisStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.timeout)
}

// result records whether a round trip reached Redis and maps a transport
// failure to errStoreUnavailable.
func (r *RedisStore) result(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		if !r.up.Load() {
			r.stateMu.Lock()
			if !r.up.Swap(true) {
				r.log.Info("tracker store reachable again")
			}
			r.stateMu.Unlock()
		}
		return nil
	}
	if re, ok := errors.AsType[redis.Error](err); ok && !unavailable(re) {
		// Redis answered, so it is up: this is a bug (a script error),
		// which retrying will not cure.
		return fmt.Errorf("redis store: %w", err)
	}
	r.failures.Add(1)
	msg := err.Error()
	r.lastErr.Store(&msg)
	if r.up.Load() {
		r.stateMu.Lock()
		if r.up.Swap(false) {
			r.log.Warn("tracker store unreachable; answering with a retry", "err", err)
		}
		r.stateMu.Unlock()
	}
	return errStoreUnavailable
}

// unavailable reports whether Redis refused for a reason that makes it
// unusable until it passes or an operator acts, as opposed to a bug:
// loading its data after a restart, a busy script, a replica without its
// master, a wrong or missing password (shown in /stats).
func unavailable(err redis.Error) bool {
	msg := err.Error()
	for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "WRONGPASS", "NOAUTH", "NOPERM"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// swarmKeys returns the keys of h's swarm: seeders and leechers of IPv4,
// seeders and leechers of IPv6, and the peer hash. The info-hash is kept
// binary: it is in every key of every swarm.
func (r *RedisStore) swarmKeys(h InfoHash) []string {
	base := r.prefix + string(h[:])
	return []string{base + ":s4", base + ":l4", base + ":s6", base + ":l6", base + ":p"}
}

// luaPrelude is shared by the announce and scrape scripts. KEYS are
// s4 l4 s6 l6 p stats; ARGV[1] is now (Unix seconds). drop removes the
// swarm's expired peers and counts them.
const luaPrelude = `
local now = tonumber(ARGV[1])
local h, st = KEYS[5], KEYS[6]
local expired = 0
local function drop(z)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 1000)
  if #gone == 0 then return 0 end
  for i = 1, #gone do redis.call('HDEL', h, gone[i]) end
  if #gone < 1000 then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  else
    redis.call('ZREM', z, unpack(gone))
  end
  return #gone
end
local ds = drop(KEYS[1]) + drop(KEYS[3])
expired = ds + drop(KEYS[2]) + drop(KEYS[4])
local dp = -expired
ds = -ds
local function counts()
  local s = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[3])
  local l = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[4])
  return s, l, tonumber(redis.call('HGET', h, '#d') or '0')
end
local function account(evicted)
  if dp ~= 0 then redis.call('HINCRBY', st, 'peers', dp) end
  if ds ~= 0 then redis.call('HINCRBY', st, 'seeders', ds) end
  if expired ~= 0 then redis.call('HINCRBY', st, 'expired', expired) end
  if evicted ~= 0 then redis.call('HINCRBY', st, 'evicted', evicted) end
end
`

// announceScript records one announce and draws the reply. ARGV: now,
// expiry, peer id, value (flags byte: bit 0 seeder, bit 1 IPv6; BEP 7 key
// hash, 4 bytes; IP, 4 or 16 bytes; port, 2 bytes), event, numwant, swarm
// cap, info-hash, random seed. KEYS[7] is the torrents set.
// It returns {status, seeders, leechers, downloaded, id, value, ...};
// status -1 is ErrPeerIDInUse.
var announceScript = redis.NewScript(luaPrelude + `
local exp, id, val = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local ev, want, maxper = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
math.randomseed(tonumber(ARGV[9]))
local fl = string.byte(val, 1)
local seed, v6 = fl % 2 == 1, fl >= 2
local function zkey(s, six) return KEYS[(six and 3 or 1) + (s and 0 or 1)] end
local old = redis.call('HGET', h, id)
local evicted = 0
if old then
  local ofl = string.byte(old, 1)
  local oseed, ov6 = ofl % 2 == 1, ofl >= 2
  local okey = string.sub(old, 2, 5)
  if okey ~= '\0\0\0\0' and okey ~= string.sub(val, 2, 5) and string.sub(old, 6) ~= string.sub(val, 6) then
    account(0)
    local s, l, d = counts()
    return {-1, s, l, d}
  end
  if ev == 2 or oseed ~= seed or ov6 ~= v6 then
    redis.call('ZREM', zkey(oseed, ov6), id)
  end
  if ev == 2 then
    redis.call('HDEL', h, id)
    dp = dp - 1
    if oseed then ds = ds - 1 end
  else
    if ev == 3 and not oseed then redis.call('HINCRBY', h, '#d', 1) end
    if oseed ~= seed then ds = ds + (seed and 1 or -1) end
  end
elseif ev ~= 2 then
  local n = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4])
  if n >= maxper then
    local bz, bm, bs = nil, nil, nil
    for i = 1, 4 do
      local o = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      if #o == 2 and (bs == nil or tonumber(o[2]) < bs) then bz, bm, bs = i, o[1], tonumber(o[2]) end
    end
    if bz then
      redis.call('ZREM', KEYS[bz], bm)
      redis.call('HDEL', h, bm)
      dp = dp - 1
      if bz == 1 or bz == 3 then ds = ds - 1 end
      evicted = 1
    end
  end
  dp = dp + 1
  if seed then ds = ds + 1 end
  if ev == 3 then redis.call('HINCRBY', h, '#d', 1) end
end
if ev ~= 2 then
  redis.call('HSET', h, id, val)
  redis.call('ZADD', zkey(seed, v6), exp, id)
  redis.call('ZADD', KEYS[7], exp, ARGV[8])
end
account(evicted)
-- Set sizes once: every redis.call costs more in the script than the
-- command itself.
local card = {}
for i = 1, 4 do card[i] = redis.call('ZCARD', KEYS[i]) end
local out = {0, card[1] + card[3], card[2] + card[4], tonumber(redis.call('HGET', h, '#d') or '0')}
local function zidx(s, six) return (six and 3 or 1) + (s and 0 or 1) end
-- pick draws k peers from the seeders (none for a seeder, which has
-- nothing to get from them) and leechers of one family, each set in
-- proportion to its size, skipping the announcing peer.
local function pick(six, k)
  if k <= 0 then return 0 end
  local is, il = zidx(true, six), zidx(false, six)
  local zs, zl = KEYS[is], KEYS[il]
  local cs = seed and 0 or card[is]
  local cl = card[il]
  if cs + cl == 0 then return 0 end
  local ks = cs
  if cs + cl > k then ks = math.min(cs, math.floor(k * cs / (cs + cl) + math.random())) end
  local kl = math.min(cl, k - ks)
  ks = math.min(cs, k - kl)
  local got = 0
  for _, zk in ipairs({{zs, ks}, {zl, kl}}) do
    if zk[2] > 0 then
      local ids = redis.call('ZRANDMEMBER', zk[1], zk[2] + 1)
      local n = 0
      -- Values in batches: one HMGET rather than an HGET per peer, and
      -- small enough batches for unpack's limit.
      for b = 1, #ids, 500 do
        if n == zk[2] then break end
        local e = math.min(#ids, b + 499)
        local vals = redis.call('HMGET', h, unpack(ids, b, e))
        for i = b, e do
          if n == zk[2] then break end
          local v = vals[i - b + 1]
          if ids[i] ~= id and v then
            out[#out + 1] = ids[i]
            out[#out + 1] = v
            n = n + 1
          end
        end
      end
      got = got + n
    end
  end
  return got
end
-- The announcer's own family first: a UDP client can only use those.
local got = pick(v6, want)
pick(not v6, want - got)
return out
`)

// scrapeScript drops expired peers and returns {seeders, leechers,
// downloaded}.
var scrapeScript = redis.NewScript(luaPrelude + `
account(0)
local s, l, d = counts()
return {s, l, d}
`)

// sweepScript drops up to ARGV[2] torrents whose every peer has expired.
// KEYS: torrents, stats; ARGV: now, limit, key prefix. Returns how many
// torrents it dropped.
var sweepScript = redis.NewScript(`
local now, lim, pre = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local idle = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, lim)
local peers, seeders = 0, 0
for i = 1, #idle do
  local b = pre .. idle[i]
  local s = redis.call('ZCARD', b .. ':s4') + redis.call('ZCARD', b .. ':s6')
  seeders = seeders + s
  peers = peers + s + redis.call('ZCARD', b .. ':l4') + redis.call('ZCARD', b .. ':l6')
  redis.call('DEL', b .. ':s4', b .. ':l4', b .. ':s6', b .. ':l6', b .. ':p')
  redis.call('ZREM', KEYS[1], idle[i])
end
if peers ~= 0 then
  redis.call('HINCRBY', KEYS[2], 'peers', -peers)
  redis.call('HINCRBY', KEYS[2], 'expired', peers)
end
if seeders ~= 0 then redis.call('HINCRBY', KEYS[2], 'seeders', -seeders) end
return #idle
`)

// Announce implements Store in one round trip.
func (r *RedisStore) Announce(now time.Time, a *PeerAnnounce, dst []Peer) ([]Peer, Swarm, error) {
	var val [1 + 4 + 16 + 2]byte
	ip := a.Addr.Addr().Unmap()
	n := 5
	if a.Seeder {
		val[0] |= 1
	}
	if ip.Is6() {
		val[0] |= 2
		b := ip.As16()
		n += copy(val[5:], b[:])
	} else {
		b := ip.As4()
		n += copy(val[5:], b[:])
	}
	val[1], val[2], val[3], val[4] = byte(a.Key>>24), byte(a.Key>>16), byte(a.Key>>8), byte(a.Key)
	val[n], val[n+1] = byte(a.Addr.Port()>>8), byte(a.Addr.Port())
	n += 2
	ts := now.Unix()
	keys := append(r.swarmKeys(a.InfoHash), r.keyStats, r.keyTorrents)
	ctx, cancel := r.ctx()
	defer cancel()
	res, err := announceScript.Run(ctx, r.rdb, keys,
		ts, ts+r.ttl, a.PeerID[:], val[:n], int(a.Event), a.NumWant, r.maxPer, a.InfoHash[:], rand.Int64N(1<<40)).Slice()
	if err := r.result(err); err != nil {
		return dst, Swarm{}, err
	}
	if len(res) < 4 {
		return dst, Swarm{}, fmt.Errorf("redis store: announce script answered %d values", len(res))
	}
	sw := Swarm{Complete: toInt(res[1]), Incomplete: toInt(res[2]), Downloaded: toInt(res[3])}
	if toInt(res[0]) == -1 {
		return dst, sw, ErrPeerIDInUse
	}
	for i := 4; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		v, _ := res[i+1].(string)
		p, ok := decodeRedisPeer(id, v)
		if ok {
			dst = append(dst, p)
		}
	}
	return dst, sw, nil
}

// decodeRedisPeer reads a peer id and the value the announce script
// stored for it; a malformed entry (not written by this store) is skipped.
func decodeRedisPeer(id, v string) (Peer, bool) {
	var p Peer
	if len(id) != len(p.ID) {
		return p, false
	}
	copy(p.ID[:], id)
	var ip netip.Addr
	switch len(v) {
	case 5 + 4 + 2:
		ip = netip.AddrFrom4([4]byte([]byte(v[5:9])))
	case 5 + 16 + 2:
		ip = netip.AddrFrom16([16]byte([]byte(v[5:21])))
	default:
		return p, false
	}
	l := len(v)
	p.Addr = netip.AddrPortFrom(ip, uint16(v[l-2])<<8|uint16(v[l-1]))
	return p, true
}

func toInt(v any) int {
	switch n := v.(type) {
	case int64:
		return int(n)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

// Scrape implements Store; while Redis is unreachable it reports zero
// counts, and the server, which asks through ScrapeErr, refuses instead.
func (r *RedisStore) Scrape(now time.Time, h InfoHash) Swarm {
	sw, _ := r.ScrapeErr(now, h)
	return sw
}

// ScrapeErr returns h's counts, or errStoreUnavailable when Redis cannot
// be reached.
func (r *RedisStore) ScrapeErr(now time.Time, h InfoHash) (Swarm, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	keys := append(r.swarmKeys(h), r.keyStats)
	res, err := scrapeScript.Run(ctx, r.rdb, keys, now.Unix()).Slice()
	if err := r.result(err); err != nil {
		return Swarm{}, err
	}
	if len(res) != 3 {
		return Swarm{}, fmt.Errorf("redis store: scrape script answered %d values", len(res))
	}
	return Swarm{Complete: toInt(res[0]), Incomplete: toInt(res[1]), Downloaded: toInt(res[2])}, nil
}

// sweepBatch is how many idle torrents one sweep script drops, so that
// one call never holds Redis for long.
const sweepBatch = 200

// Sweep implements Store: it drops torrents whose peers have all expired,
// a batch per round trip. Several instances sweeping at once is harmless.
func (r *RedisStore) Sweep(now time.Time) {
	for range 10_000 {
		ctx, cancel := r.ctx()
		n, err := sweepScript.Run(ctx, r.rdb, []string{r.keyTorrents, r.keyStats}, now.Unix(), sweepBatch, r.prefix).Int()
		cancel()
		if r.result(err) != nil || n < sweepBatch {
			return
		}
	}
}

// Stats implements Store. While Redis is unreachable the counts are zero;
// Health says why.
func (r *RedisStore) Stats() StoreStats {
	ctx, cancel := r.ctx()
	defer cancel()
	pipe := r.rdb.Pipeline()
	hm := pipe.HMGet(ctx, r.keyStats, "peers", "seeders", "expired", "evicted")
	zc := pipe.ZCard(ctx, r.keyTorrents)
	_, err := pipe.Exec(ctx)
	if r.result(err) != nil {
		return StoreStats{}
	}
	v := hm.Val()
	st := StoreStats{
		Torrents:     int(zc.Val()),
		Peers:        toInt(v[0]),
		Seeders:      toInt(v[1]),
		ExpiredPeers: uint64(toInt(v[2])),
		EvictedPeers: uint64(toInt(v[3])),
	}
	st.Leechers = st.Peers - st.Seeders
	return st
}

// StoreHealth is the /stats report of a store shared between instances.
type StoreHealth struct {
	// Kind names the store ("redis").
	Kind string `json:"kind"`
	// Up is false while the store cannot be reached; announces are then
	// refused with a retry.
	Up bool `json:"up"`
	// Failures counts round trips that failed since start.
	Failures uint64 `json:"failures"`
	// LastError is the latest failure, empty when there was none.
	LastError string `json:"last_error,omitempty"`
}

// Health reports whether Redis was reachable on the latest round trip.
func (r *RedisStore) Health() StoreHealth {
	h := StoreHealth{Kind: "redis", Up: r.up.Load(), Failures: r.failures.Load()}
	if e := r.lastErr.Load(); e != nil {
		h.LastError = *e
	}
	return h
}

// sharedLists is what the allow-list and passkeys look like in a store
// shared between instances. Has* tell a field that was never published
// from one published empty (an empty allow-list opens the tracker).
type sharedLists struct {
	Version  int64
	HasKeys  bool
	Keys     map[string]struct{}
	HasAllow bool
	Allow    []InfoHash
}

// listsVersion returns the version of the shared lists, false when none
// were ever published (or Redis lost them in a restart).
func (r *RedisStore) listsVersion() (int64, bool, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	v, err := r.rdb.HGet(ctx, r.keyLists, "ver").Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false, r.result(nil)
	}
	if err := r.result(err); err != nil {
		return 0, false, err
	}
	return v, true, nil
}

// loadLists reads the shared lists.
func (r *RedisStore) loadLists() (sharedLists, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	m, err := r.rdb.HGetAll(ctx, r.keyLists).Result()
	if err := r.result(err); err != nil {
		return sharedLists{}, err
	}
	var l sharedLists
	l.Version, _ = strconv.ParseInt(m["ver"], 10, 64)
	if k, ok := m["keys"]; ok {
		l.HasKeys = true
		l.Keys = make(map[string]struct{})
		for key := range strings.SplitSeq(k, "\n") {
			if key != "" {
				l.Keys[key] = struct{}{}
			}
		}
	}
	if a, ok := m["allow"]; ok {
		l.HasAllow = true
		for i := 0; i+20 <= len(a); i += 20 {
			l.Allow = append(l.Allow, InfoHash([]byte(a[i:i+20])))
		}
	}
	return l, nil
}

// publishLists writes the given lists (nil leaves a list as it is) and
// bumps the version, atomically, and returns the new version.
func (r *RedisStore) publishLists(keys map[string]struct{}, allow *[]InfoHash) (int64, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	pipe := r.rdb.TxPipeline()
	if keys != nil {
		var b strings.Builder
		for k := range keys {
			b.WriteString(k)
			b.WriteByte('\n')
		}
		pipe.HSet(ctx, r.keyLists, "keys", b.String())
	}
	if allow != nil {
		b := make([]byte, 0, 20*len(*allow))
		for _, h := range *allow {
			b = append(b, h[:]...)
		}
		pipe.HSet(ctx, r.keyLists, "allow", b)
	}
	ver := pipe.HIncrBy(ctx, r.keyLists, "ver", 1)
	_, err := pipe.Exec(ctx)
	if err := r.result(err); err != nil {
		return 0, err
	}
	return ver.Val(), nil
}
