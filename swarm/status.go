package swarm

// Status dumps, for operators and bug reports: what the client, each
// torrent and each peer hold right now, and the refusal counters
// (refusal.go), in the manner of anacrolix/dht's WriteStatus.

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-p2p/shoal/internal/termsafe"
	"github.com/shoal-p2p/shoal/internal/units"
	"github.com/shoal-p2p/shoal/piece"
	"github.com/shoal-p2p/shoal/swarm/choker"
)

// WriteStatus writes a human-readable dump of the client and each of its
// torrents to w, in one write. It is for operators and bug reports; its
// format may change.
func (c *Client) WriteStatus(w io.Writer) {
	var b bytes.Buffer
	now := time.Now()
	fmt.Fprintf(&b, "shoal status at %s\n", now.Format(time.RFC3339))
	b.WriteString("client: listening on ")
	for i, a := range c.Addrs() {
		if i > 0 {
			b.WriteString(" and ")
		}
		b.WriteString(a.String())
	}
	fmt.Fprintf(&b, ", peer id %x (%s)\n", c.peerID, clientName(c.peerID))
	fmt.Fprintf(&b, "  limits: %d peers per torrent, %s upload slots, upload %s, download %s\n",
		c.cfg.MaxPeers, slotsText(c.cfg.UploadSlots), limitText(c.cfg.MaxUploadRate), limitText(c.cfg.MaxDownloadRate))
	fmt.Fprintf(&b, "  handshakes pending: %d of %d\n", c.pending.len(), maxPendingHandshakes)
	fmt.Fprintf(&b, "  encryption: %s\n", c.cfg.Encryption)
	rc := c.refused.counts()
	writeRefusals(&indenter{w: &b, prefix: "  "}, &rc)
	c.mu.Lock()
	ts := c.torrentList()
	c.mu.Unlock()
	slices.SortFunc(ts, func(a, b *Torrent) int { return cmp.Compare(a.info.Name, b.info.Name) })
	fmt.Fprintf(&b, "  torrents: %d\n", len(ts))
	for _, t := range ts {
		t.writeStatus(&b, now)
	}
	w.Write(b.Bytes())
}

// WriteStatus writes a human-readable dump of the torrent and its peers
// to w, in one write: what the picker, the choker, the address book,
// super-seeding and serving hold, and the refusal counters. It is for
// operators and bug reports; its format may change.
func (t *Torrent) WriteStatus(w io.Writer) {
	var b bytes.Buffer
	t.writeStatus(&b, time.Now())
	w.Write(b.Bytes())
}

// writeStatus renders the torrent under its lock; the caller writes the
// buffer out after, so a slow writer never holds the torrent up.
func (t *Torrent) writeStatus(b *bytes.Buffer, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(b, "torrent %q\n", termsafe.String(t.info.Name))
	w := &indenter{w: b, prefix: "  "}
	fmt.Fprintf(w, "info-hash: %s\n", t.info.ID())
	if t.info.Format == piece.FormatHybrid {
		fmt.Fprintf(w, "info-hash v1: %s\n", t.info.V1Hash)
		if n := len(t.layers); n > 0 {
			fmt.Fprintf(w, "piece layers: %d file(s) still missing, their pieces checked by SHA-1 alone\n", n)
		}
	}
	state := "downloading"
	switch {
	case t.closing:
		state = "closing"
	case t.stopErr != nil:
		state = "download stopped: " + termsafe.String(t.stopErr.Error())
	case t.ss != nil:
		state = "super-seeding"
	case t.seeding:
		state = "seeding"
	}
	fmt.Fprintf(w, "state: %s\n", state)
	fmt.Fprintf(w, "pieces: %d of %d verified, %s of %s\n", t.info.NumPieces-t.picker.Missing(), t.info.NumPieces,
		sizeText(t.verifiedBytes.Load()), sizeText(t.info.TotalLength))
	var down, up float64
	for p := range t.peers {
		down += p.downRate
		up += p.upRate
	}
	fmt.Fprintf(w, "transfer: down %s/s, up %s/s; downloaded %s, uploaded %s, wasted %s\n",
		sizeText(int64(down)), sizeText(int64(up)), sizeText(t.downloaded.Load()), sizeText(t.uploaded.Load()), sizeText(t.wasted.Load()))
	// A v1 torrent has no leaf hashes to await: its failed pieces wait to
	// pass for smart ban instead (blame.go).
	awaiting, what := len(t.suspects), "awaiting leaf hashes"
	if !t.info.HasV2() {
		awaiting, what = len(t.ban.failed), "remembered for smart ban"
	}
	queued := 0
	for _, pp := range t.partial {
		queued += pp.pending
	}
	fmt.Fprintf(w, "download: %d pieces partly in, %d blocks queued for disk, %d failed pieces %s, %d bad blocks proven, %d peers banned\n",
		len(t.partial), queued, awaiting, what, t.provenBlocks, t.addressBook.NumBans())
	t.picker.WriteStatus(w)
	t.choker.WriteStatus(w, now)
	t.addressBook.WriteStatus(w)
	t.writeSuperSeedStatus(w)
	t.writeServeStatus(w, now)
	rc := t.refused.counts()
	writeRefusals(w, &rc)
	t.writePeers(w, now)
}

// writeRefusals writes the counts that are not zero, a line per group.
func writeRefusals(w io.Writer, rc *RefusalCounts) {
	wrote := false
	for g, grp := range refusalGroups {
		end := NumRefusals
		if g+1 < len(refusalGroups) {
			end = refusalGroups[g+1].first
		}
		var parts []string
		for r := grp.first; r < end; r++ {
			if rc[r] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", r, rc[r]))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s: %s\n", grp.title, strings.Join(parts, ", "))
			wrote = true
		}
	}
	if !wrote {
		fmt.Fprintln(w, "refusals: none")
	}
}

// chokerFlags reports a peer's standing with the choker. FreeRiding may
// record a snub as it decides; a dump must not change what it shows, so
// that is undone. Called with t.mu held.
func (t *Torrent) chokerFlags(p *peer, now time.Time) (optimistic, freeRiding bool) {
	snubbed := p.snubbedUs
	freeRiding = p.FreeRiding(now)
	p.snubbedUs = snubbed
	return t.choker.IsOptimistic(p), freeRiding
}

// writeSuperSeedStatus prints BEP 16 progress while it lasts.
func (t *Torrent) writeSuperSeedStatus(w io.Writer) {
	if t.ss == nil {
		if t.c.cfg.SuperSeed && t.seeding {
			fmt.Fprintln(w, "super-seeding: over (every piece reached some peer), or never started (the torrent was not complete when added)")
		}
		return
	}
	t.ss.WriteStatus(w)
}

// writeServeStatus prints faults in the data we serve (serve.go).
func (t *Torrent) writeServeStatus(w io.Writer, now time.Time) {
	s := &t.srv
	bad := 0
	if s.bad != nil {
		bad = s.bad.Count()
	}
	if len(s.files) == 0 && bad == 0 {
		fmt.Fprintln(w, "serving: no faults")
		return
	}
	fmt.Fprintf(w, "serving: %d files with trouble, %d suspect, %d pieces bad, %d checks queued\n", len(s.files), s.suspects, bad, len(s.verifyq))
	fis := make([]int, 0, len(s.files))
	for fi := range s.files {
		fis = append(fis, fi)
	}
	slices.Sort(fis)
	for _, fi := range fis {
		f := s.files[fi]
		var what []string
		if f.unreadable {
			what = append(what, fmt.Sprintf("unreadable (%v), next try in %s", f.cause, f.nextProbe.Sub(now).Truncate(time.Second)))
		}
		if f.suspect {
			what = append(what, fmt.Sprintf("changed, %d pieces unchecked", f.unchecked))
		}
		if f.bad > 0 {
			what = append(what, fmt.Sprintf("%d pieces bad", f.bad))
		}
		if f.refused > 0 {
			what = append(what, fmt.Sprintf("%d requests refused since the last log line", f.refused))
		}
		if len(what) == 0 {
			what = append(what, "recovered")
		}
		fmt.Fprintf(w, "serving: %s: %s\n", termsafe.String(t.filePath(fi)), termsafe.String(strings.Join(what, "; ")))
	}
}

// writePeers prints a line per peer, sorted by address.
func (t *Torrent) writePeers(w io.Writer, now time.Time) {
	ps := make([]*peer, 0, len(t.peers))
	for p := range t.peers {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *peer) int { return a.addr.Compare(b.addr) })
	fmt.Fprintf(w, "peers: %d (%d encrypted; WE/THEY: C choking, U unchoked, I interested; FLAGS: o optimistic, f free-riding, s snubbed us, e evicted, q quiet since its handshake, F fast extension, 1 a v1 peer of a hybrid, E encrypted: RC4 after MSE)\n", len(ps), t.encryptedPeers)
	if len(ps) == 0 {
		return
	}
	tw := tabwriter.NewWriter(&indenter{w: w, prefix: "  "}, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tCLIENT\tDIR\tWE\tTHEY\tDOWN/s\tUP/s\tGOT\tSENT\tREQS\tQUEUED\tFLAGS\tAGE")
	for _, p := range ps {
		dir := "in"
		if p.outgoing {
			dir = "out"
		}
		p.sendMu.Lock()
		queued := 0
		for _, u := range p.uploads[p.upHead:] {
			if u.length > 0 {
				queued++
			}
		}
		p.sendMu.Unlock()
		opt, free := t.chokerFlags(p, now)
		flags := ""
		for _, f := range []struct {
			on bool
			c  byte
		}{{opt, 'o'}, {free, 'f'}, {p.snubbedUs, 's'}, {p.evicted, 'e'}, {!p.spoke, 'q'}, {p.fast, 'F'}, {t.info.HasV2() && !p.v2, '1'}, {p.encrypted, 'E'}} {
			if f.on {
				flags += string(f.c)
			}
		}
		if flags == "" {
			flags = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n",
			p.addr, termsafe.String(clientName(p.id)), dir,
			chokeText(p.amChoking, p.amInterested), chokeText(p.peerChoking, p.peerInterested),
			sizeText(int64(p.downRate)), sizeText(int64(p.upRate)), sizeText(p.downBytes.Load()), sizeText(p.upBytes.Load()),
			len(p.requested), queued, flags, now.Sub(p.joined).Truncate(time.Second))
	}
	tw.Flush()
}

// chokeText renders one side's choke and interest: "CI", "U-".
func chokeText(choking, interested bool) string {
	b := []byte("U-")
	if choking {
		b[0] = 'C'
	}
	if interested {
		b[1] = 'I'
	}
	return string(b)
}

// sizeText renders a byte count in binary units: 0 B, 16.0 KiB, 1.5 MiB.
func sizeText(n int64) string { return units.FormatBytes(n) }

func limitText(bps int64) string {
	if bps <= 0 {
		return "unlimited"
	}
	return sizeText(bps) + "/s"
}

func slotsText(n int) string {
	switch {
	case n < 0:
		return "no"
	case n == 0:
		return fmt.Sprint(choker.DefaultSlots)
	}
	return fmt.Sprint(n)
}

// indenter prefixes every line written through it.
type indenter struct {
	w      io.Writer
	prefix string
	mid    bool // within a line
}

func (d *indenter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if !d.mid {
			if _, err := io.WriteString(d.w, d.prefix); err != nil {
				return 0, err
			}
		}
		i := bytes.IndexByte(p, '\n')
		line := p
		if i >= 0 {
			line = p[:i+1]
		}
		if _, err := d.w.Write(line); err != nil {
			return 0, err
		}
		d.mid = i < 0
		p = p[len(line):]
	}
	return n, nil
}
