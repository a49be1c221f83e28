//go:build race

package storage

// raceEnabled says the race detector is on: sync.Pool then drops items at
// random on purpose, so pooled buffers allocate now and then.
const raceEnabled = true
