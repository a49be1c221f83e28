package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

// cpuTimes is a process's user and system CPU time.
type cpuTimes struct{ user, sys time.Duration }

func (c cpuTimes) sub(d cpuTimes) cpuTimes { return cpuTimes{c.user - d.user, c.sys - d.sys} }

// procCPU reads the user and system time of every thread of process pid
// so far, from /proc/PID/stat.
func procCPU(pid int) (cpuTimes, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTimes{}, err
	}
	return parseStat(data)
}

// parseStat reads utime and stime, fields 14 and 15 of /proc/PID/stat.
// The command name, field 2, is in parentheses and may hold spaces and
// parentheses itself, so fields are counted from the last ')'.
func parseStat(data []byte) (cpuTimes, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return cpuTimes{}, errors.New("/proc/PID/stat: no ')' after the command name")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return cpuTimes{}, fmt.Errorf("/proc/PID/stat: %d fields after the command name, want at least 13", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return cpuTimes{}, fmt.Errorf("/proc/PID/stat: %w", err)
	}
	return cpuTimes{time.Duration(u) * clockTick, time.Duration(s) * clockTick}, nil
}

// rusageCPU is the CPU time of a reaped child as wait4 reported it.
func rusageCPU(ps *os.ProcessState) cpuTimes {
	if ps == nil {
		return cpuTimes{}
	}
	return cpuTimes{ps.UserTime(), ps.SystemTime()}
}

// ioWriteBytes reads write_bytes from /proc/PID/io: the bytes the process
// dirtied in the page cache, by write or through a mapping alike, so it
// follows libtorrent's memory-mapped writes as well as pwrite. That makes
// it the one progress figure all downloaders share.
func ioWriteBytes(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("/proc/PID/io: no write_bytes")
}

// dirtyBytes is Dirty plus Writeback from /proc/meminfo: page-cache data
// not yet on disk, which a transfer would otherwise pay to write back.
func dirtyBytes() (int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return statusKB(data, "Dirty:")<<10 + statusKB(data, "Writeback:")<<10, nil
}

// settleWriteback syncs and then waits, up to limit, for the page cache's
// dirty and writeback data to drop to at most floor, so that no transfer
// pays for the writeback of the one before it and order does not decide
// the ranking. Other users of the machine may keep it above floor; then
// the wait ends at limit and the figure is returned for the log.
func settleWriteback(ctx context.Context, floor int64, limit time.Duration) (int64, error) {
	syscall.Sync()
	deadline := time.Now().Add(limit)
	for {
		d, err := dirtyBytes()
		if err != nil || d <= floor || time.Now().After(deadline) {
			return d, err
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		syscall.Sync()
	}
}

// sample is the downloader's progress at a moment of its run.
type sample struct {
	at    time.Duration // since the downloader started
	bytes int64
}

// sampleProgress records write_bytes of process pid every period until
// done is closed, and returns the samples.
func sampleProgress(pid int, period time.Duration, done <-chan struct{}) []sample {
	t0 := time.Now()
	out := []sample{{0, 0}}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-done:
			return out
		case <-t.C:
		}
		if n, err := ioWriteBytes(pid); err == nil {
			out = append(out, sample{time.Since(t0), n})
		}
	}
}

// spread is the median, least and greatest of xs.
type spread struct{ med, lo, hi float64 }

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{med, s[0], s[len(s)-1]}
}
