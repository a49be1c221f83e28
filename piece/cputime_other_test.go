//go:build !unix

package piece

import "time"

// cpuTime is not measured here; benchmarks then leave out their CPU metric.
func cpuTime() time.Duration { return 0 }
