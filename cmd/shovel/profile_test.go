package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTuneGC: shovel's GOGC applies only when the environment sets neither
// GOGC nor GOMEMLIMIT.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	for _, tc := range []struct {
		gogc, memlimit string
		want           int
		wantLimit      int64 // the soft memory limit; math.MaxInt64 for none
	}{
		{"", "", defaultGCPercent, 96<<20 + 32<<20},
		{"50", "", 100, 96<<20 + 32<<20},
		{"", "1GiB", 100, math.MaxInt64},
	} {
		t.Setenv("GOGC", tc.gogc)
		t.Setenv("GOMEMLIMIT", tc.memlimit)
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
		tuneGC(64 << 20)
		require.Equal(t, tc.want, debug.SetGCPercent(100), "GOGC=%q GOMEMLIMIT=%q", tc.gogc, tc.memlimit)
		require.Equal(t, tc.wantLimit, debug.SetMemoryLimit(-1), "GOGC=%q GOMEMLIMIT=%q", tc.gogc, tc.memlimit)
	}
}

// TestProfiles: --cpuprofile and --memprofile (used by make bench) write
// pprof files, which are gzipped protocol buffers.
func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "mem.prof")
	stop, err := startCPUProfile(cpu)
	require.NoError(t, err)
	stop()
	var errs bytes.Buffer
	writeAllocProfile(mem, &errs)
	require.Empty(t, errs.String())
	for _, p := range []string{cpu, mem} {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(b, []byte{0x1f, 0x8b}), "%s is not gzip", p)
	}
	_, err = startCPUProfile(filepath.Join(dir, "missing", "cpu.prof"))
	require.ErrorContains(t, err, "cpuprofile")
}
