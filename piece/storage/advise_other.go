//go:build !linux

package storage

import "os"

func adviseSequential(*os.File)             {}
func adviseWillNeed(*os.File, int64, int64) {}
func startWriteback(*os.File, int64, int64) {}
func preallocate(*os.File, int64)           {}
