//go:build tools

// Package tools pins modules that shoal requires but whose importing
// packages have not landed yet, so that `go mod tidy` keeps them at the
// versions the rest of the module graph agrees on (the DHT version is the one
// github.com/anacrolix/torrent asks for). Remove an import here once a real
// package imports it.
package tools

import (
	_ "github.com/anacrolix/dht/v2"
	_ "github.com/anacrolix/torrent/bencode"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/urfave/cli/v2"
	_ "golang.org/x/time/rate"
)
