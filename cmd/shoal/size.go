package main

import (
	"fmt"

	"github.com/shoal-p2p/shoal/internal/units"
)

// parseSize reads a size or RATE flag; see units.ParseSize.
func parseSize(s string) (int64, error) { return units.ParseSize(s) }

// formatBytes renders n in binary units for people.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
