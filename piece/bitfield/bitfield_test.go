package bitfield

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestWireOrder(t *testing.T) {
	f := New(10)
	f.Set(0)
	f.Set(9)
	if got, want := f.Bytes(), []byte{0x80, 0x40}; !bytes.Equal(got, want) {
		t.Fatalf("Bytes = %x, want %x", got, want)
	}
	if !f.Has(0) || !f.Has(9) || f.Has(1) || f.Count() != 2 || f.Len() != 10 {
		t.Fatalf("unexpected state %x count %d", f.Bytes(), f.Count())
	}
}

func TestSetClearReportChange(t *testing.T) {
	f := New(3)
	if !f.Set(1) || f.Set(1) {
		t.Fatal("Set should report only the first change")
	}
	if !f.Clear(1) || f.Clear(1) {
		t.Fatal("Clear should report only the first change")
	}
	if f.Count() != 0 {
		t.Fatalf("Count = %d", f.Count())
	}
}

func TestFromBytes(t *testing.T) {
	tests := []struct {
		b    []byte
		n    int
		err  error
		want int
	}{
		{[]byte{0xff, 0xc0}, 10, nil, 10},
		{[]byte{0xff, 0xe0}, 10, ErrSpareBits, 0},
		{[]byte{0xff, 0x01}, 10, ErrSpareBits, 0},
		{[]byte{0xff}, 10, ErrLength, 0},
		{[]byte{0xff, 0, 0}, 10, ErrLength, 0},
		{[]byte{0xa5}, 8, nil, 4},
		{nil, 0, nil, 0},
		{[]byte{0}, 0, ErrLength, 0},
		{nil, -1, ErrLength, 0},
	}
	for _, tt := range tests {
		f, err := FromBytes(tt.b, tt.n)
		if !errors.Is(err, tt.err) {
			t.Errorf("FromBytes(%x, %d) err = %v, want %v", tt.b, tt.n, err, tt.err)
			continue
		}
		if err == nil && f.Count() != tt.want {
			t.Errorf("FromBytes(%x, %d) count = %d, want %d", tt.b, tt.n, f.Count(), tt.want)
		}
	}
}

func TestFromBytesCopies(t *testing.T) {
	b := []byte{0x80}
	f, err := FromBytes(b, 8)
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 0xff
	if f.Count() != 1 || f.Has(1) {
		t.Fatal("FromBytes aliases its input")
	}
	out := f.Bytes()
	out[0] = 0xff
	if f.Has(1) {
		t.Fatal("Bytes aliases the bitfield")
	}
}

func TestAllSetAllClearAll(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 64, 65, 100} {
		f := New(n)
		if f.All() != (n == 0) {
			t.Errorf("n=%d: empty All = %v", n, f.All())
		}
		f.SetAll()
		if !f.All() || f.Count() != n {
			t.Errorf("n=%d: after SetAll count %d", n, f.Count())
		}
		if _, err := FromBytes(f.Bytes(), n); err != nil {
			t.Errorf("n=%d: SetAll produced invalid wire bitfield: %v", n, err)
		}
		c := f.Clone()
		f.ClearAll()
		if f.Count() != 0 || (n > 0 && f.Has(n-1)) {
			t.Errorf("n=%d: ClearAll left bits", n)
		}
		if c.Count() != n {
			t.Errorf("n=%d: Clone shares state", n)
		}
	}
}

func TestNextSetMatchesHas(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5, 63, 64, 65, 200, 1000} {
		for _, density := range []float64{0, 0.01, 0.5, 1} {
			f := New(n)
			for i := range n {
				if r.Float64() < density {
					f.Set(i)
				}
			}
			var got []int
			for i := f.NextSet(0); i >= 0; i = f.NextSet(i + 1) {
				got = append(got, i)
			}
			var want []int
			for i := range n {
				if f.Has(i) {
					want = append(want, i)
				}
			}
			if len(got) != len(want) || len(got) != f.Count() {
				t.Fatalf("n=%d: NextSet found %d, Has %d, Count %d", n, len(got), len(want), f.Count())
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("n=%d: mismatch at %d: %d vs %d", n, i, got[i], want[i])
				}
			}
		}
	}
}

func TestOutOfRangePanics(t *testing.T) {
	f := New(8)
	for _, i := range []int{-1, 8} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Has(%d) did not panic", i)
				}
			}()
			f.Has(i)
		}()
	}
}

func TestZeroValue(t *testing.T) {
	var f Bitfield
	if f.Len() != 0 || f.Count() != 0 || !f.All() || f.NextSet(0) != -1 || len(f.Bytes()) != 0 {
		t.Fatal("zero value is not an empty bitfield")
	}
}
