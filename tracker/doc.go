// Package tracker implements a BitTorrent tracker over HTTP (BEP 3, 7, 23,
// 48) and UDP (BEP 15 with BEP 41 URL data), and the matching
// announce/scrape client for both.
//
// The server keeps its swarms in a [Store]; the default [MemStore] is an
// in-memory, sharded store whose memory is bounded by caps (see
// [MemStoreConfig]). Every request path is built to bound the work a hostile
// client can cause: queries are parsed without allocating maps, lengths are
// checked before decoding, per-address budgets cut floods, and Serve's lean
// HTTP/1.1 server (lean.go; net/http costs more per connection than the
// tracker's work, and most clients open one per announce) carries
// deadlines and a cap on request heads. The UDP front end ([Server.ServeUDP],
// udp.go) keeps no state per client: connection IDs are a MAC of address
// and minute, and no answer to an unproven sender is larger than its packet.
//
// BitTorrent v2 (BEP 52) clients announce the SHA-256 info-hash truncated to
// 20 bytes, so the tracker only ever handles 20-byte info-hashes; the
// allow-list loader accepts full 64-hex v2 hashes and truncates them the same
// way.
package tracker
