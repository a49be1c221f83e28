package piece

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/anacrolix/torrent/bencode"
)

// Metainfo comes from strangers (any peer sends an info dict by BEP 9),
// so reading it must cost memory in proportion to what shoal keeps of it.
// The bencode library's generic decoding (into map[string]any) costs
// some 600 bytes for every string, however short: a 30 MiB dict of tiny
// files made gigabytes. So metainfo is walked in place instead: the
// library decodes and checks every string and integer, one token at a
// time, straight from the input; the walker only steps into and out of
// lists and dicts, checks that dict keys are sorted and unique (what the
// generic decoding checked), counts tokens and bounds nesting. Strings
// are handed out as slices of the input, copied only where kept.

// MaxInfoTokens caps the bencode tokens of an info dict (one per string,
// integer, list and dict, one per end of a list or dict, as libtorrent
// counts them), as libtorrent's metadata_token_limit caps the metadata
// it fetches from peers (BEP 9): a few bytes a token could otherwise ask
// for far more memory in files and paths than the dict's size.
const MaxInfoTokens = 2_500_000

// maxTorrentTokens caps the tokens of a whole .torrent file, as
// libtorrent's max_decode_tokens does when it loads one.
const maxTorrentTokens = 3_000_000

// maxNesting bounds how deep lists and dicts nest, as the library's
// generic decoding bounds it; it keeps the walker's recursion shallow.
const maxNesting = bencode.DefaultMaxDepth

// walker reads bencode in place, one token at a time.
type walker struct {
	b   []byte
	r   *bytes.Reader
	dec *bencode.Decoder
	// sink receives a string's bytes: the decoder checks the string and
	// reads it into its own reused buffer, and the walker hands out the
	// slice of b it came from.
	sink      [0]byte
	n         int64
	depth     int
	tokens    int
	maxTokens int // 0 for no limit
	// scratch holds the fields of one file's dict at a time, reused
	// from file to file.
	scratch []field
	// components counts the path components of a file tree's files.
	components int
	// items is the number of elements of the list or keys of the dict
	// walked last.
	items int
}

// longString is the length from which the walker steps over a string's
// bytes rather than having the decoder read them: the decoder copies a
// string into a buffer grown by doubling, which for a 30 MiB "pieces"
// would cost 64 MiB and a third of a second.
const longString = 512

func newWalker(b []byte, maxTokens int) *walker {
	w := &walker{b: b, r: bytes.NewReader(b), maxTokens: maxTokens}
	w.newDecoder()
	return w
}

// newDecoder gives the walker a fresh decoder at its place. It is needed
// again after an integer beyond int64, which the walker lets pass where
// it reads no number but which leaves the decoder's buffer holding its
// digits.
func (w *walker) newDecoder() {
	w.dec = bencode.NewDecoder(w.r)
	// Past this the decoder checks a string's length prefix, consumes it
	// and stops with an error before the string's bytes: see str.
	w.dec.MaxStrLen = longString
}

// pos is the offset in b of the next token. The decoder reads through r
// exactly the bytes of the tokens it decodes, and the walker steps over
// the 'd', 'l' and 'e' of containers itself.
func (w *walker) pos() int { return len(w.b) - w.r.Len() }

// seek moves to offset p of b, the start of a value walked before.
func (w *walker) seek(p int) { w.r.Seek(int64(p), io.SeekStart) }

func (w *walker) token() error {
	w.tokens++
	if w.maxTokens > 0 && w.tokens > w.maxTokens {
		return invalid("more than %d bencode tokens", w.maxTokens)
	}
	return nil
}

// peek returns the first byte of the next token.
func (w *walker) peek() (byte, error) {
	p := w.pos()
	if p >= len(w.b) {
		return 0, invalid("bencode: unexpected end at byte %d", p)
	}
	return w.b[p], nil
}

// kindName names the type of the value starting with byte k in errors.
func kindName(k byte) string {
	switch {
	case k == 'd':
		return "a dict"
	case k == 'l':
		return "a list"
	case k == 'i':
		return "an integer"
	case k >= '0' && k <= '9':
		return "a string"
	}
	return "nothing"
}

func isString(k byte) bool { return k >= '0' && k <= '9' }

// str reads a string and returns it as a slice of b.
func (w *walker) str() ([]byte, error) {
	if err := w.token(); err != nil {
		return nil, err
	}
	start := w.pos()
	err := w.dec.Decode(&w.sink)
	if err == nil {
		body := w.pos()
		colon := bytes.IndexByte(w.b[start:body], ':')
		return w.b[start+colon+1 : body], nil
	}
	body := w.pos()
	if syntax := (*bencode.SyntaxError)(nil); !errors.As(err, &syntax) && body > start && w.b[body-1] == ':' {
		// The decoder read the length prefix up to its colon and stopped
		// short of the bytes: a long string, if the prefix is a length
		// as bencode writes it (the decoder also stops here, with
		// another error, on a leading zero).
		digits := string(w.b[start : body-1])
		n, perr := strconv.ParseInt(digits, 10, 64)
		if perr == nil && n > longString && strconv.FormatInt(n, 10) == digits {
			if n > int64(len(w.b)-body) {
				return nil, invalid("bencode: string at byte %d: %d bytes, past the end", start, n)
			}
			w.seek(body + int(n))
			return w.b[body : body+int(n)], nil
		}
	}
	return nil, invalid("bencode: string at byte %d: %v", start, err)
}

// int reads an integer; the decoder refuses leading zeros, "-0" and
// values beyond int64.
func (w *walker) int() (int64, error) {
	if err := w.token(); err != nil {
		return 0, err
	}
	start := w.pos()
	if err := w.dec.Decode(&w.n); err != nil {
		return 0, fmt.Errorf("%w: bencode: integer at byte %d: %w", ErrInvalid, start, err)
	}
	return w.n, nil
}

// open steps into the list or dict starting with byte k.
func (w *walker) open() error {
	if err := w.token(); err != nil {
		return err
	}
	if w.depth++; w.depth > maxNesting {
		return invalid("bencode: nested more than %d deep at byte %d", maxNesting, w.pos())
	}
	w.r.ReadByte()
	return nil
}

// close steps out of a list or dict at its 'e'.
func (w *walker) close() error {
	w.r.ReadByte()
	w.depth--
	return w.token()
}

// dict walks the dict at the walker, calling fn with each key, in order,
// when the walker stands at the key's value. fn reads the value or leaves
// it to be skipped. Keys must be strings, sorted and unique.
func (w *walker) dict(fn func(key []byte) error) error {
	if err := w.open(); err != nil {
		return err
	}
	var prev []byte
	for n := 0; ; n++ {
		k, err := w.peek()
		if err != nil {
			return err
		}
		if k == 'e' {
			w.items = n
			return w.close()
		}
		if !isString(k) {
			return invalid("bencode: dict key at byte %d is %s, want a string", w.pos(), kindName(k))
		}
		key, err := w.str()
		if err != nil {
			return err
		}
		if n > 0 && bytes.Compare(key, prev) <= 0 {
			return invalid("bencode: dict keys unsorted or repeated: %q after %q", key, prev)
		}
		prev = key
		at := w.pos()
		if fn != nil {
			if err := fn(key); err != nil {
				return err
			}
		}
		if w.pos() == at {
			if err := w.skip(); err != nil {
				return err
			}
		}
	}
}

// list walks the list at the walker, calling fn for each element when the
// walker stands at it. fn reads the element or leaves it to be skipped.
func (w *walker) list(fn func(i int) error) error {
	if err := w.open(); err != nil {
		return err
	}
	for i := 0; ; i++ {
		k, err := w.peek()
		if err != nil {
			return err
		}
		if k == 'e' {
			w.items = i
			return w.close()
		}
		at := w.pos()
		if fn != nil {
			if err := fn(i); err != nil {
				return err
			}
		}
		if w.pos() == at {
			if err := w.skip(); err != nil {
				return err
			}
		}
	}
}

// skip reads over one value, checking it as the rest.
func (w *walker) skip() error {
	k, err := w.peek()
	if err != nil {
		return err
	}
	switch {
	case k == 'd':
		return w.dict(nil)
	case k == 'l':
		return w.list(nil)
	case k == 'i':
		if _, err = w.int(); err != nil && beyondInt64(w, err) {
			err = nil
		}
	case isString(k):
		_, err = w.str()
	default:
		err = invalid("bencode: unexpected %q at byte %d", k, w.pos())
	}
	return err
}

// span is the place of one value in the input.
type span struct{ start, end int }

// field is one key of a dict and its value: read already when it is a
// string or an integer, so that reading it costs no second decoding.
type field struct {
	key    []byte // a slice of the input
	kind   byte   // the value's first byte
	val    span
	tokens int    // in the value
	items  int    // elements or keys of the value, a list or dict
	n      int64  // an integer's value
	s      []byte // a string's bytes, a slice of the input
	err    error  // an integer beyond int64, refused only if it is read
}

// fields reads the dict at the walker into its keys and values, reusing
// out's storage, and checks every value.
func (w *walker) fields(out []field) ([]field, error) {
	out = out[:0]
	err := w.dict(func(key []byte) error {
		k, err := w.peek()
		if err != nil {
			return err
		}
		f := field{key: key, kind: k, val: span{start: w.pos()}, tokens: w.tokens}
		switch {
		case k == 'i':
			f.n, f.err = w.int()
			if f.err != nil && !beyondInt64(w, f.err) {
				return f.err
			}
		case isString(k):
			if f.s, err = w.str(); err != nil {
				return err
			}
		default:
			w.items = 0
			if err := w.skip(); err != nil {
				return err
			}
			// The value's own container closes last, so items is its
			// count.
			f.items = w.items
		}
		f.val.end, f.tokens = w.pos(), w.tokens-f.tokens
		out = append(out, f)
		return nil
	})
	return out, err
}

// beyondInt64 reports whether err, from reading an integer, refuses only
// its size: a well-formed integer beyond int64 where shoal reads no
// number is as valid as any other, to bencode and to libtorrent.
func beyondInt64(w *walker, err error) bool {
	var (
		syntax *bencode.SyntaxError
		num    *strconv.NumError
	)
	if errors.As(err, &syntax) && errors.As(syntax.What, &num) && num.Err == strconv.ErrRange && w.b[w.pos()-1] == 'e' {
		w.newDecoder()
		return true
	}
	return false
}

// obj reads typed values out of a dict walked by fields, naming the dict
// in its errors: where, followed by [index] for an entry of a list or by
// path for a file of a tree. The name is made only for an error, so a
// dict a file costs no string.
type obj struct {
	w     *walker
	f     []field
	where string
	index int      // ≥ 1 for entry index-1 of a list
	path  []string // for a file of a tree
}

func (o obj) name(k string) string {
	switch {
	case o.where == "":
		return k
	case o.index > 0:
		return fmt.Sprintf("%s[%d]: %s", o.where, o.index-1, k)
	case o.path != nil:
		return o.where + strings.Join(o.path, "/") + ": " + k
	}
	return o.where + ": " + k
}

func (o obj) get(k string) *field {
	for i := range o.f {
		if string(o.f[i].key) == k {
			return &o.f[i]
		}
	}
	return nil
}

func (o obj) has(k string) bool { return o.get(k) != nil }

// items returns the number of elements or keys of k's value, a list or
// a dict, so that what is built of them can be allocated at once.
func (o obj) items(k string) int {
	if f := o.get(k); f != nil {
		return f.items
	}
	return 0
}

// tokens returns the number of tokens in k's value.
func (o obj) tokens(k string) int {
	if f := o.get(k); f != nil {
		return f.tokens
	}
	return 0
}

// at moves the walker to k's value and returns its kind.
func (o obj) at(k string) (byte, bool) {
	f := o.get(k)
	if f == nil {
		return 0, false
	}
	o.w.seek(f.val.start)
	return f.kind, true
}

func (o obj) int(k string) (int64, error) {
	f := o.get(k)
	switch {
	case f == nil:
		return 0, invalid("%s: missing", o.name(k))
	case f.kind != 'i':
		return 0, invalid("%s: %s, want an integer", o.name(k), kindName(f.kind))
	case f.err != nil:
		return 0, fmt.Errorf("%s: %w", o.name(k), f.err)
	}
	return f.n, nil
}

func (o obj) optInt(k string) (int64, error) {
	if !o.has(k) {
		return 0, nil
	}
	return o.int(k)
}

// bytes returns k's string as a slice of the input.
func (o obj) bytes(k string) ([]byte, error) {
	f := o.get(k)
	switch {
	case f == nil:
		return nil, invalid("%s: missing", o.name(k))
	case !isString(f.kind):
		return nil, invalid("%s: %s, want a string", o.name(k), kindName(f.kind))
	}
	return f.s, nil
}

func (o obj) string(k string) (string, error) {
	b, err := o.bytes(k)
	return string(b), err
}

func (o obj) optString(k string) (string, error) {
	if !o.has(k) {
		return "", nil
	}
	return o.string(k)
}

// valueEnd walks the first value of b and returns where it ends, for
// Parse, which ignores what follows a torrent's top-level dict.
func valueEnd(b []byte) (int, error) {
	w := newWalker(b, maxTorrentTokens)
	if err := w.skip(); err != nil {
		return 0, err
	}
	return w.pos(), nil
}

// firstKey returns the first key of the dict at the walker, and false
// for an empty dict, leaving the walker where it was.
func (w *walker) firstKey() ([]byte, bool, error) {
	at, depth, tokens := w.pos(), w.depth, w.tokens
	defer func() { w.seek(at); w.depth, w.tokens = depth, tokens }()
	if err := w.open(); err != nil {
		return nil, false, err
	}
	k, err := w.peek()
	switch {
	case err != nil:
		return nil, false, err
	case k == 'e':
		return nil, false, nil
	case !isString(k):
		return nil, false, invalid("bencode: dict key at byte %d is %s, want a string", w.pos(), kindName(k))
	}
	key, err := w.str()
	return key, err == nil, err
}
