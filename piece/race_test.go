//go:build race

package piece

// raceEnabled says the race detector is on: it makes the walk over
// bencode some 25 times slower, so the cost tests shrink their shapes.
const raceEnabled = true
