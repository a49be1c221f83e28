package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// which Linux fixes at 100 for user space on every architecture Go runs
// on (sysconf(_SC_CLK_TCK) would need cgo to ask).
const clockTick = 10 * time.Millisecond

// memory is what /proc/PID/status says of a process's memory.
type memory struct {
	RSS, Anon, HWM int64 // VmRSS, RssAnon, VmHWM in bytes
	Threads        int
}

// readMemory reads /proc/pid/status.
func readMemory(pid int) (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatus(string(data))
}

// parseStatus reads VmRSS, RssAnon, VmHWM and Threads from the text of
// /proc/PID/status. VmRSS and RssAnon are required.
func parseStatus(s string) (memory, error) {
	var m memory
	seen := 0
	for _, l := range strings.Split(s, "\n") {
		key, val, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "VmRSS", "RssAnon", "VmHWM":
			num, unit, _ := strings.Cut(val, " ")
			kb, err := strconv.ParseInt(num, 10, 64)
			if err != nil || strings.TrimSpace(unit) != "kB" {
				return memory{}, fmt.Errorf("/proc status: %s: %q is not a size in kB", key, val)
			}
			switch key {
			case "VmRSS":
				m.RSS = kb << 10
				seen++
			case "RssAnon":
				m.Anon = kb << 10
				seen++
			case "VmHWM":
				m.HWM = kb << 10
			}
		case "Threads":
			n, err := strconv.Atoi(val)
			if err != nil {
				return memory{}, fmt.Errorf("/proc status: Threads: %q: %w", val, err)
			}
			m.Threads = n
		}
	}
	if seen != 2 {
		return memory{}, fmt.Errorf("/proc status: no VmRSS or RssAnon (a zombie?)")
	}
	return m, nil
}

// readCPU is the CPU time (user and system) pid has used so far.
func readCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(string(data))
}

// parseStat reads utime+stime from the text of /proc/PID/stat. The
// command name (field 2) is in parentheses and may hold spaces and
// parentheses itself, so the fields are counted from its last ')'.
func parseStat(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no ')' after the command name in %q", s)
	}
	// After ") ": field 3 (state) onwards; utime is field 14, stime 15.
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat: utime %q: %w", f[11], err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat: stime %q: %w", f[12], err)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// readRchar is the bytes pid has read through read(2) and its kin so
// far, from files, sockets and pipes alike (rchar of /proc/PID/io): a
// daemon that hashes its data again at start-up reads all of it, page
// cache or not, which read_bytes would not count.
func readRchar(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	return parseRchar(string(data))
}

// parseRchar reads rchar from the text of /proc/PID/io.
func parseRchar(s string) (int64, error) {
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(l, "rchar:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc io: rchar %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("/proc io: no rchar")
}

// loadAvg is the first field of /proc/loadavg (the 1-minute load), or ""
// if it cannot be read.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
