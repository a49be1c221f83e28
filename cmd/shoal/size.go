package main

import (
	"github.com/shoal-p2p/shoal/internal/units"
)

// parseSize reads a size or RATE flag; see units.ParseSize.
func parseSize(s string) (int64, error) { return units.ParseSize(s) }

// formatBytes renders n in binary units for people; see units.FormatBytes.
func formatBytes(n int64) string { return units.FormatBytes(n) }
