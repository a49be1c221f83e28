// Package tracker implements an HTTP BitTorrent tracker (BEP 3, 7, 23, 48)
// and the matching announce/scrape client.
//
// The server keeps its swarms in a [Store]; the default [MemStore] is an
// in-memory, sharded store whose memory is bounded by caps (see
// [MemStoreConfig]). Every request path is built to bound the work a hostile
// client can cause: queries are parsed without allocating maps, lengths are
// checked before decoding, per-address budgets cut floods, and Serve's lean
// HTTP/1.1 server (lean.go; net/http costs more per connection than the
// tracker's work, and most clients open one per announce) carries
// deadlines and a cap on request heads.
//
// BitTorrent v2 (BEP 52) clients announce the SHA-256 info-hash truncated to
// 20 bytes, so the tracker only ever handles 20-byte info-hashes; the
// allow-list loader accepts full 64-hex v2 hashes and truncates them the same
// way.
package tracker
