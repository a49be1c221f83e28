package piece

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/internal/lttest"
)

// The cost of parsing info dicts from strangers. An info dict comes from
// any peer (BEP 9), so its parse must cost memory in proportion to what
// shoal keeps of it, never a multiple of its size per token: these
// shapes pack as many tokens as the limits allow.

// hostileShape builds an info dict of about size bytes and at most
// tokens bencode tokens, whichever it reaches first.
type hostileShape struct {
	name  string
	build func(size, tokens int) []byte
}

// appendStr appends s as a bencode string.
func appendStr(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// fileName is the i-th name of a flat folder: fixed width, so bencode's
// byte order is the numeric order.
func fileName(i int) string {
	const digits = "0123456789abcdef"
	var b [7]byte
	for k := len(b) - 1; k >= 0; k-- {
		b[k] = digits[i&15]
		i >>= 4
	}
	return string(b[:])
}

// v1Tail closes a v1 info dict whose files hold total bytes.
func v1Tail(b []byte, total int64) []byte {
	const pl = 16 << 10
	np := (total + pl - 1) / pl
	b = fmt.Appendf(b, "e4:name1:n12:piece lengthi%de6:pieces%d:", pl, 20*np)
	b = append(b, bytes.Repeat([]byte{1}, int(20*np))...)
	return append(b, 'e')
}

// v2File appends a one-byte file called name to a v2 file tree.
func v2File(b []byte, name string) []byte {
	b = appendStr(b, name)
	b = append(b, "d0:d6:lengthi1e11:pieces root32:"...)
	b = append(b, bytes.Repeat([]byte{1}, 32)...)
	return append(b, "ee"...)
}

const v2Tail = "e12:meta versioni2e4:name1:n12:piece lengthi16384ee"

var hostileShapes = []hostileShape{
	// Many one-byte files in a v1 list.
	{"v1-many-files", func(size, tokens int) []byte {
		b := []byte("d5:filesl")
		var n int64
		for len(b) < size-20*(int(n)/(16<<10)+1)-64 && 8*(int(n)+1)+16 <= tokens {
			b = append(b, "d6:lengthi1e4:pathl"...)
			b = append(appendStr(b, fileName(int(n))), "ee"...)
			n++
		}
		return v1Tail(b, n)
	}},
	// Many one-byte files in a v2 file tree.
	{"v2-many-files", func(size, tokens int) []byte {
		b := []byte("d9:file treed")
		for i := 0; len(b) < size-96 && 10*(i+1)+16 <= tokens; i++ {
			b = v2File(b, fileName(i))
		}
		return append(b, v2Tail...)
	}},
	// v1 files whose paths run 64 folders deep, each folder its own.
	{"v1-deep-paths", func(size, tokens int) []byte {
		b := []byte("d5:filesl")
		var n int64
		for len(b) < size-20*(int(n)/(16<<10)+1)-1024 && (maxDepthTree+7)*(int(n)+1)+16 <= tokens {
			b = append(b, "d6:lengthi1e4:pathl"...)
			for k := range maxDepthTree {
				b = appendStr(b, strconv.FormatInt(n*maxDepthTree+int64(k), 36))
			}
			b = append(b, "ee"...)
			n++
		}
		return v1Tail(b, n)
	}},
	// A v2 tree 60 folders deep above a folder of many files: each file
	// has a path of 61 components that the tree spells out once. Within
	// the token limit it stays within the path components allowed.
	{"v2-deep-tree", func(size, tokens int) []byte {
		const depth = 60
		b := []byte("d9:file treed")
		for range depth {
			b = append(b, "1:ad"...)
		}
		for i := 0; len(b) < size-96-depth && 10*(i+1)+3*depth+16 <= tokens && (tokens > MaxInfoTokens || (i+1)*(depth+1)+depth*(depth+1)/2 <= maxPathComponents); i++ {
			b = v2File(b, fileName(i))
		}
		b = append(b, bytes.Repeat([]byte{'e'}, depth)...)
		return append(b, v2Tail...)
	}},
	// One file whose pieces fill the dict.
	{"v1-long-pieces", func(size, _ int) []byte {
		const pl = 16 << 10
		np := int64(size-100) / 20
		b := fmt.Appendf(nil, "d6:lengthi%de4:name1:n12:piece lengthi%de6:pieces%d:", np*pl, pl, 20*np)
		b = append(b, bytes.Repeat([]byte{1}, int(20*np))...)
		return append(b, 'e')
	}},
	// Many empty strings under a key no parser knows.
	{"unknown-key-strings", func(size, tokens int) []byte {
		b := []byte("d6:lengthi1e4:name1:n12:piece lengthi16384e6:pieces20:")
		b = append(b, bytes.Repeat([]byte{1}, 20)...)
		b = append(b, "1:xl"...)
		for n := 0; len(b) < size-2 && n+16 <= tokens; n++ {
			b = append(b, "0:"...)
		}
		return append(b, "ee"...)
	}},
}

// parseCost is what one ParseInfo call cost.
type parseCost struct {
	elapsed   time.Duration
	allocated uint64 // bytes allocated during the call
	peak      uint64 // highest HeapInuse seen above the level before it
	err       error
}

// measureParse runs ParseInfo on b and samples the heap while it runs.
func measureParse(b []byte) parseCost {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var (
		wg   sync.WaitGroup
		peak uint64
		done = make(chan struct{})
	)
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	start := time.Now()
	in, err := ParseInfo(b)
	elapsed := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	close(done)
	wg.Wait()
	peak = max(peak, after.HeapInuse)
	runtime.KeepAlive(in)
	c := parseCost{elapsed: elapsed, allocated: after.TotalAlloc - before.TotalAlloc, err: err}
	if peak > before.HeapInuse {
		c.peak = peak - before.HeapInuse
	}
	return c
}

// parseHeapBudget is the most an info dict from a peer may cost to parse,
// allocated in all and held at once: about four times the largest info
// dict (MaxInfoSize), where the generic decoding took up to 4 GiB.
const parseHeapBudget = 128 << 20

// TestParseInfoCostBounded parses each hostile shape twice: filling
// MaxInfoSize, which packs more tokens than MaxInfoTokens and must be
// refused, and within MaxInfoTokens (and the path components allowed),
// which is accepted. Either way the parse stays within parseHeapBudget.
// Run with -v for the figures. Under the race detector, which slows the
// walk 25 times, the shapes fill a sixteenth of the limits and are all
// accepted, within the same budget.
func TestParseInfoCostBounded(t *testing.T) {
	const budget = parseHeapBudget
	size, tokens := MaxInfoSize, MaxInfoTokens
	if raceEnabled {
		size, tokens = size/16, tokens/16
	}
	for _, tokens := range []int{1 << 30, tokens} {
		for _, s := range hostileShapes {
			b := s.build(size, tokens)
			if len(b) > MaxInfoSize {
				t.Fatalf("%s: %d bytes, over the limit", s.name, len(b))
			}
			c := measureParse(b)
			verdict := "accepted"
			if c.err != nil {
				verdict = "refused: " + c.err.Error()
			}
			t.Logf("%-20s %5.1f MiB  %6.2fs  alloc %4.0f MiB  peak heap %4.0f MiB  %.60s",
				s.name, float64(len(b))/(1<<20), c.elapsed.Seconds(), float64(c.allocated)/(1<<20), float64(c.peak)/(1<<20), verdict)
			if c.allocated > budget || c.peak > budget {
				t.Errorf("%s: %d bytes allocated, %d held at the peak; the budget is %d", s.name, c.allocated, c.peak, budget)
			}
			// Filling the size limit, every shape but the long pieces (what a
			// big real torrent looks like) packs too many tokens.
			overfull := tokens > MaxInfoTokens && s.name != "v1-long-pieces" && !raceEnabled
			if overfull && (c.err == nil || !strings.Contains(c.err.Error(), "tokens")) {
				t.Errorf("%s: %v, want a refusal for too many tokens", s.name, c.err)
			}
			if !overfull && c.err != nil {
				t.Errorf("%s: %v", s.name, c.err)
			}
		}
	}
}

// A v2 tree within the token limit whose files' paths add up to more
// components than allowed is refused, before the paths take the memory.
func TestParseInfoPathComponentsCapped(t *testing.T) {
	b := hostileShapes[3].build(MaxInfoSize, MaxInfoTokens+1)
	c := measureParse(b)
	if c.err == nil || !strings.Contains(c.err.Error(), "path components") {
		t.Fatalf("error %v, want a refusal for too many path components", c.err)
	}
	if c.allocated > parseHeapBudget {
		t.Fatalf("%d bytes allocated; the budget is %d", c.allocated, parseHeapBudget)
	}
}

// An integer beyond int64 under a key shoal does not read is valid
// bencode, which libtorrent takes too; the integers after it still read
// right. One where shoal reads a number is refused.
func TestParseInfoBigIntegerUnread(t *testing.T) {
	big := "i-99999999999999999999999e"
	pieces := "6:pieces20:" + strings.Repeat("\x01", 20)
	in, err := ParseInfo([]byte("d1:a" + big + "6:lengthi5e4:name1:n12:piece lengthi16384e" + pieces + "1:zl" + big + "i7eee"))
	if err != nil {
		t.Fatal(err)
	}
	if in.TotalLength != 5 || in.PieceLength != 16384 {
		t.Fatalf("length %d, piece length %d after a big integer", in.TotalLength, in.PieceLength)
	}
	if _, err := ParseInfo([]byte("d6:length" + big + "4:name1:n12:piece lengthi16384e" + pieces + "e")); err == nil || !strings.Contains(err.Error(), "length") {
		t.Fatalf("a big length: %v, want a refusal", err)
	}
}

// Parse takes a .torrent of as many bencode tokens as libtorrent takes,
// and refuses one token more, as libtorrent does.
func TestTokenLimitLikeLibtorrent(t *testing.T) {
	// A v1 torrent of one file, with empty lists under an unknown key
	// (two tokens each, the cheapest to walk) and an empty string if
	// odd: 16 tokens besides, counting the ends of lists and dicts.
	torrent := func(tokens int) []byte {
		b := []byte("d4:infod6:lengthi1e4:name1:n12:piece lengthi16384e6:pieces20:")
		b = append(b, bytes.Repeat([]byte{1}, 20)...)
		b = append(b, "e1:xl"...)
		b = append(b, bytes.Repeat([]byte("le"), (tokens-16)/2)...)
		if tokens%2 == 1 {
			b = append(b, "0:"...)
		}
		return append(b, "ee"...)
	}
	most, over := torrent(maxTorrentTokens), torrent(maxTorrentTokens+1)
	if _, err := Parse(most); err != nil {
		t.Fatalf("%d tokens refused: %v", maxTorrentTokens, err)
	}
	if _, err := Parse(over); err == nil || !strings.Contains(err.Error(), "tokens") {
		t.Fatalf("%d tokens: %v, want a refusal", maxTorrentTokens+1, err)
	}
	lttest.Require(t)
	v := ltVerdicts(t, [][]byte{most, over})
	if !strings.HasPrefix(v[0], "ok ") || strings.HasPrefix(v[1], "ok ") {
		t.Fatalf("libtorrent says %q for the most tokens and %q for one more", v[0], v[1])
	}
}

// BenchmarkParseInfoManyFiles parses info dicts of 200,000 one-byte files,
// as a v1 list and as a v2 tree: the cost per file of the parse that
// every magnet link's metadata goes through.
func BenchmarkParseInfoManyFiles(b *testing.B) {
	const files = 200_000
	for _, c := range []struct {
		shape         hostileShape
		tokensPerFile int
	}{{hostileShapes[0], 8}, {hostileShapes[1], 10}} {
		in := c.shape.build(MaxInfoSize, files*c.tokensPerFile+16)
		b.Run(c.shape.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				info, err := ParseInfo(in)
				if err != nil {
					b.Fatal(err)
				}
				if len(info.Files) != files {
					b.Fatalf("%d files, want %d", len(info.Files), files)
				}
			}
		})
	}
}
