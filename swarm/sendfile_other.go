//go:build !linux

package swarm

import (
	"net"
	"os"
)

// blockSender is Linux's sendfile path; elsewhere every block is read into
// the output buffer.
type blockSender struct{ corked bool }

func newBlockSender(net.Conn) *blockSender             { return nil }
func (s *blockSender) send(*os.File, int64, int) error { return nil }
func (s *blockSender) setCork(bool) error              { return nil }
