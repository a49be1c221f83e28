// Package redistest runs a private redis-server for tests: on a loopback
// port, with its working folder in the test's temporary folder, no
// snapshots and no append-only file, stopped when the test ends. It never
// touches a system-wide Redis.
package redistest

import (
	"bufio"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server a test started.
type Server struct {
	// Addr is 127.0.0.1:PORT.
	Addr string
	// Args are extra redis-server arguments (a password, a socket).
	Args []string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs redis-server on a free loopback port. scripts/test-deps.sh
// installs it; a test that needs it fails without it, as a missing
// dependency is a broken test environment, not a reason to pass.
func Start(t testing.TB) *Server { return StartWith(t) }

// StartWith is Start with extra redis-server arguments.
func StartWith(t testing.TB, args ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found (scripts/test-deps.sh installs it): %v", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a port for redis-server: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{Addr: addr, Args: args, dir: t.TempDir()}
	s.Restart(t)
	t.Cleanup(func() { s.Kill(t) })
	return s
}

// URL is the redis:// URL of database db.
func (s *Server) URL(db int) string { return "redis://" + s.Addr + "/" + strconv.Itoa(db) }

// Kill stops the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Process.Signal(syscall.SIGCONT) // a paused server dies too
	<-s.done
	s.cmd = nil
}

// Restart starts the server (again) on the same port and waits until it
// answers PING. Without persistence a restarted server is empty.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	var lastErr error
	for try := 0; try < 50; try++ {
		args := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", s.dir, "--save", "",
			"--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"}, s.Args...)
		cmd := exec.Command("redis-server", args...)
		cmd.Dir = s.dir
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-done:
				// Exited: most likely the port of a killed server
				// is not free yet.
				lastErr = errExited
			default:
				// With a password set, NOAUTH is the answer of a
				// server that is up.
				if _, err := s.Command("PING"); err == nil || strings.Contains(err.Error(), "NOAUTH") {
					s.cmd, s.done = cmd, done
					return
				} else {
					lastErr = err
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			break
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("redis-server on %s did not come up: %v", s.Addr, lastErr)
}

type exitedError struct{}

func (exitedError) Error() string { return "redis-server exited" }

var errExited error = exitedError{}

// Command sends one inline command and returns the reply's text: a
// simple or bulk string, an integer, or an error line's text as an error.
func (s *Server) Command(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "-"):
		return "", replyError(line[1:])
	case strings.HasPrefix(line, "$"):
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return line[1:], nil
}

type replyError string

func (e replyError) Error() string { return "redis: " + string(e) }

// Info returns the integer field of INFO section sect named key.
func (s *Server) Info(sect, key string) (int64, error) {
	txt, err := s.Command("INFO", sect)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(txt, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, replyError("INFO " + sect + " has no " + key)
}

// Pause stops the server with SIGSTOP: it keeps its connections and port
// but answers nothing, as a stalled or partitioned Redis would.
func (s *Server) Pause() { s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.cmd.Process.Signal(syscall.SIGCONT) }
