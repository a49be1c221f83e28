package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server the benchmark runs for the shoal-redis
// targets: on loopback, in the work folder, without persistence.
type redisServer struct {
	cmd *exec.Cmd
	url string
	rdb *redis.Client
}

func startRedis(o options, work, name string) (*redisServer, error) {
	bin, err := exec.LookPath(o.redisBin)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install it (apt-get install redis-server) or leave the shoal-redis targets out", o.redisBin)
	}
	dir := filepath.Join(work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// Redis runs on the trackers' CPU when pinned: it is part of the
	// tracker being measured.
	cmd := trackerCommand(o, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r := &redisServer{cmd: cmd, url: "redis://" + addr + "/0", rdb: redis.NewClient(&redis.Options{Addr: addr})}
	deadline := time.Now().Add(10 * time.Second)
	for r.rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("redis-server on %s did not answer within 10s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r, nil
}

// usedMemory is INFO memory's used_memory: what Redis holds for data and
// its own structures, without allocator slack.
func (r *redisServer) usedMemory() int64 {
	info, err := r.rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func (r *redisServer) stop() {
	r.rdb.Close()
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.cmd.Wait()
}

// startShoalRedis runs a redis-server and one (shoal-redis) or two
// (shoal-redis2) shoal trackers storing their swarms in it.
func startShoalRedis(o options, work, target string) (*tracker, error) {
	rs, err := startRedis(o, work, target)
	if err != nil {
		return nil, err
	}
	oo := o
	oo.shoalArgs = o.shoalArgs + " --store " + rs.url
	n := 1
	if target == "shoal-redis2" {
		n = 2
	}
	var first *tracker
	for range n {
		t, err := startShoal(oo, work)
		if err != nil {
			if first != nil {
				first.stop()
			} else {
				rs.stop()
			}
			return nil, err
		}
		if first == nil {
			first, t.redis = t, rs
			continue
		}
		first.more = append(first.more, t)
	}
	first.name = target
	return first, nil
}
