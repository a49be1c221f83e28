package main

import (
	"encoding/csv"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' of its own: fields are
	// counted from the last ')'. utime 1234, stime 566 ticks.
	line := "4242 (shoal (x) d) S 1 4242 4242 0 -1 4194560 1510 0 0 0 1234 566 0 0 20 0 12 0 537 1263628288 5234 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1800 * 10 * time.Millisecond; got != want {
		t.Errorf("parseStat = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "4242 shoal S 1", "4242 (shoal) S 1 2 3", "4242 (shoal) S 1 4242 4242 0 -1 4194560 1510 0 0 0 x 566 0"} {
		if got, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tshoal\nVmPeak:\t 1300000 kB\nVmHWM:\t   30000 kB\nVmRSS:\t   21700 kB\nRssAnon:\t    6656 kB\nRssFile:\t   15044 kB\nThreads:\t12\n"
	m, err := parseStatus(status)
	if err != nil {
		t.Fatal(err)
	}
	if want := (memory{RSS: 21700 << 10, Anon: 6656 << 10, HWM: 30000 << 10, Threads: 12}); m != want {
		t.Errorf("parseStatus = %+v, want %+v", m, want)
	}
	for _, bad := range []string{
		"Name:\tzombie\nState:\tZ (zombie)\n", // no memory lines
		"VmRSS:\t 12 kB\n",                    // no RssAnon
		"VmRSS:\t 12 MB\nRssAnon:\t 1 kB\n",   // not kB
		"VmRSS:\t x kB\nRssAnon:\t 1 kB\n",    // not a number
		"VmRSS:\t 1 kB\nRssAnon:\t 1 kB\nThreads: many\n",
	} {
		if m, err := parseStatus(bad); err == nil {
			t.Errorf("parseStatus(%q) = %+v, want an error", bad, m)
		}
	}
}

// The figures of this very process, read as the daemons' are: the
// parsers must agree with the kernel's real files.
func TestReadSelf(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Anon <= 0 || m.Anon > m.RSS || m.HWM < m.RSS || m.Threads < 1 {
		t.Errorf("readMemory(self) = %+v: not a live process's figures", m)
	}
	before, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn some 300 ms of CPU; the kernel's count must move by about that.
	x, end := uint64(1), time.Now().Add(300*time.Millisecond)
	for time.Now().Before(end) {
		for range 10000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	after, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if used := after - before; used < 100*time.Millisecond || used > 10*time.Second {
		t.Errorf("CPU used over a 300 ms busy loop = %v (x=%d)", used, x)
	}
}

func TestReadRchar(t *testing.T) {
	if _, err := parseRchar("wchar: 5\nsyscr: 1\n"); err == nil {
		t.Error("parseRchar without an rchar line: no error")
	}
	before, err := readRchar(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/f"
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	after, err := readRchar(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The 1 MiB read, and not much more: nothing else here reads much.
	if got := after - before; got < 1<<20 || got > 2<<20 {
		t.Errorf("rchar grew by %d over a 1 MiB read", got)
	}
}

func TestParseTargets(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // nil: an error
	}{
		{"shoal,transmission", []string{"shoal", "transmission"}},
		{" transmission , shoal ", []string{"transmission", "shoal"}},
		{"shoal,", []string{"shoal"}},
		{"qbittorrent", nil},
		{"shoal,shoal", nil},
		{"", nil},
	} {
		got, err := parseTargets(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("parseTargets(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseTargets(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestFileSize(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	small := 0
	for range 10000 {
		n := fileSize(r)
		if n < 64<<10 || n > 1<<20 || n%1024 != 0 {
			t.Fatalf("fileSize = %d: not a whole KiB from 64 KiB to 1 MiB", n)
		}
		if n <= 256<<10 {
			small++
		}
	}
	// Seven in ten up to 256 KiB, and a few of the rest land on it too.
	if small < 6700 || small > 7300 {
		t.Errorf("%d of 10000 sizes up to 256 KiB, want about 7000", small)
	}
}

func TestCSVMatchesHeader(t *testing.T) {
	r := &result{target: "shoal", version: "shoal dev, \"quoted\"", n: 3, restartErr: "a, b"}
	lines := strings.Split(strings.TrimSpace(csvText([]*result{r})), "\n")
	if len(lines) != 2 {
		t.Fatalf("csv has %d lines, want header and one row:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if lines[0] != strings.Join(csvHeader, ",") {
		t.Errorf("csv header = %q", lines[0])
	}
	if !strings.HasPrefix(lines[1], `shoal,"shoal dev, ""quoted""",3,`) {
		t.Errorf("csv row = %q: fields not quoted", lines[1])
	}
	rec, err := csv.NewReader(strings.NewReader(lines[1])).Read()
	if err != nil || len(rec) != len(csvHeader) {
		t.Errorf("csv row has %d fields (%v), header %d", len(rec), err, len(csvHeader))
	}
}
