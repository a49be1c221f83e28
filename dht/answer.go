package dht

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"time"

	adht "github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
)

// goodFor is BEP 5's window: a node that answered us this recently is good.
const goodFor = 15 * time.Minute

// maxAnswered bounds the record of nodes that answered us.
const maxAnswered = 4096

// returnNodes is how many nodes a find_node reply holds per address family
// (BEP 5's K).
const returnNodes = 8

// The library answers find_node wrongly: it ranks its table by distance to
// the query's info_hash (zero in a find_node) instead of its target, and it
// walks only from that point's bucket toward the buckets farther from its
// own ID, skipping every bucket nearer to it. A node whose ID starts with a
// 1 bit therefore never hands out any node that shares that bit with it:
// in a small network, a node joining through it is not told of the others.
// So this package answers find_node itself, with the good nodes of the
// table that are truly nearest to the target.

// noteAnswer records that the node id at ap answered one of our queries.
func (n *Node) noteAnswer(ap netip.AddrPort, id krpc.ID) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.answered[ap]; !ok && len(n.answered) >= maxAnswered {
		for k, a := range n.answered {
			if now.Sub(a.at) >= goodFor {
				delete(n.answered, k)
			}
		}
		if len(n.answered) >= maxAnswered {
			return
		}
	}
	n.answered[ap] = answer{id: id, at: now}
}

// answer is the last reply a node sent us.
type answer struct {
	id krpc.ID
	at time.Time
}

// noteReply records the sender of a reply to one of our queries.
func (n *Node) noteReply(addr net.Addr, res adht.QueryResult) {
	if res.Err != nil || res.Reply.Y != "r" {
		return
	}
	id := res.Reply.SenderID()
	ua, ok := addr.(*net.UDPAddr)
	if id == nil || !ok {
		return
	}
	n.noteAnswer(ua.AddrPort(), *id)
}

// takeFindNode takes over answering the find_node query m from source,
// and reports whether it did; if not, the library answers. It runs inside
// the library's lock, so the answer is built on a goroutine of its own.
func (n *Node) takeFindNode(m *krpc.Msg, source *net.UDPAddr) bool {
	if m.Q != "find_node" || m.A == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.srv == nil {
		return false
	}
	select {
	case n.replySlots <- struct{}{}:
	default:
		// Busy: the library's answer is worse, but better than none.
		return false
	}
	srv, tid, target, want := n.srv, m.T, m.A.Target, slices.Clone(m.A.Want)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { <-n.replySlots }()
		n.replyFindNode(srv, source, tid, target, want)
	}()
	return true
}

func (n *Node) replyFindNode(srv *adht.Server, source *net.UDPAddr, tid string, target krpc.ID, want []krpc.Want) {
	nodes := n.goodNodes(srv.Nodes())
	slices.SortFunc(nodes, func(a, b krpc.NodeInfo) int {
		return cmpDistance(a.ID, b.ID, target)
	})
	r := krpc.Return{ID: srv.ID()}
	v4 := source.IP.To4() != nil
	// BEP 32: the querier's want, or else its own address family.
	if wantNodes(want, krpc.WantNodes, v4) {
		r.Nodes = firstNodes(nodes, func(ni krpc.NodeInfo) bool { return ni.Addr.IP.To4() != nil })
	}
	if wantNodes(want, krpc.WantNodes6, !v4) {
		r.Nodes6 = firstNodes(nodes, func(ni krpc.NodeInfo) bool { return ni.Addr.IP.To4() == nil })
	}
	b, err := bencode.Marshal(krpc.Msg{T: tid, Y: "r", R: &r, IP: krpc.NodeAddr{IP: source.IP, Port: source.Port}})
	if err != nil {
		n.log.Debug("dht: encode find_node reply", "err", err)
		return
	}
	// The same budget as the library's own replies, which it drops too
	// when the budget is spent.
	if !n.sendLimit.Allow() {
		return
	}
	if _, err := n.conn.WriteTo(b, source); err != nil && n.ctx.Err() == nil {
		n.log.Debug("dht: reply to find_node", "to", source, "err", err)
	}
}

// goodNodes keeps the nodes of the table that answered us within goodFor.
func (n *Node) goodNodes(table []krpc.NodeInfo) []krpc.NodeInfo {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.DeleteFunc(table, func(ni krpc.NodeInfo) bool {
		ap, ok := addrPort(ni.Addr)
		if !ok {
			return true
		}
		a, ok := n.answered[ap]
		return !ok || a.id != ni.ID || now.Sub(a.at) >= goodFor
	})
}

func wantNodes(want []krpc.Want, w krpc.Want, sameFamily bool) bool {
	if len(want) == 0 {
		return sameFamily
	}
	return slices.Contains(want, w)
}

func firstNodes(nodes []krpc.NodeInfo, keep func(krpc.NodeInfo) bool) []krpc.NodeInfo {
	var ret []krpc.NodeInfo
	for _, ni := range nodes {
		if len(ret) == returnNodes {
			break
		}
		if keep(ni) {
			ret = append(ret, ni)
		}
	}
	return ret
}

// cmpDistance orders a and b by XOR distance to target.
func cmpDistance(a, b, target krpc.ID) int {
	var da, db [20]byte
	for i := range target {
		da[i] = a[i] ^ target[i]
		db[i] = b[i] ^ target[i]
	}
	return bytes.Compare(da[:], db[:])
}
