//go:build !linux

package kpi

import "runtime/metrics"

// rssBytes estimates the resident set from the Go runtime's own account of
// the memory it has mapped and not returned to the OS: without /proc there
// is no portable way to read the real one.
func rssBytes() (uint64, bool) {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0, false
	}
	return s[0].Value.Uint64() - s[1].Value.Uint64(), true
}

func cpuSeconds() (float64, bool) {
	s := []metrics.Sample{{Name: "/cpu/classes/user:cpu-seconds"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 || s[1].Value.Kind() != metrics.KindFloat64 {
		return 0, false
	}
	return s[0].Value.Float64() + s[1].Value.Float64(), true
}

func openFDs() (int, bool) { return 0, false }

// netInterfaces knows no interfaces where there is no /proc/net/dev.
func netInterfaces() ([]netInterface, error) { return nil, nil }
