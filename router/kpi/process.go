package kpi

import (
	"runtime"
)

// The metrics Process adds, under the publisher's object path. deferreds
// and rss-mb are the two the Voltha components published to the original
// shovel; Grafana dashboards built for them keep working.
const (
	// MetricDeferreds is the original's count of pending work items; a Go
	// program's closest equivalent is its goroutines, so it has that value.
	MetricDeferreds = "deferreds"
	// MetricRSSMB is the resident set size in MiB.
	MetricRSSMB = "rss-mb"
	// MetricGoroutines is runtime.NumGoroutine.
	MetricGoroutines = "goroutines"
	// MetricCPUSeconds is user plus system CPU time used since start.
	MetricCPUSeconds = "cpu-seconds"
	// MetricOpenFDs is the number of open file descriptors.
	MetricOpenFDs = "open-fds"
	// MetricGCPauseTotalMS is the garbage collector's stop-the-world
	// pauses since start, in milliseconds.
	MetricGCPauseTotalMS = "gc-pause-total-ms"
	// MetricGCPauseLastMS is the most recent GC pause in milliseconds (0
	// before the first collection).
	MetricGCPauseLastMS = "gc-pause-last-ms"
)

// ProcessMetrics returns the names of the metrics Process adds, in the
// order it adds them. On Linux it adds them all; elsewhere open-fds is
// left out and rss-mb and cpu-seconds are the Go runtime's own estimates.
func ProcessMetrics() []string {
	return []string{
		MetricDeferreds, MetricRSSMB, MetricGoroutines, MetricCPUSeconds,
		MetricOpenFDs, MetricGCPauseTotalMS, MetricGCPauseLastMS,
	}
}

// Source adds its measurements to a message under an object path.
type Source interface {
	Collect(s *Slice, objectPath string) error
}

// SourceFunc adapts a function to Source.
type SourceFunc func(s *Slice, objectPath string) error

// Collect calls f.
func (f SourceFunc) Collect(s *Slice, objectPath string) error { return f(s, objectPath) }

// Process measures the running process: goroutines, memory, CPU time, open
// files and garbage-collector pauses. It is safe for concurrent use.
type Process struct{}

var _ Source = Process{}

// Collect adds the metrics named by ProcessMetrics under objectPath. A
// measurement the platform cannot make is left out rather than sent as 0.
func (Process) Collect(s *Slice, objectPath string) error {
	g := float64(runtime.NumGoroutine())
	s.Add(objectPath, MetricDeferreds, g)
	if rss, ok := rssBytes(); ok {
		s.Add(objectPath, MetricRSSMB, round(float64(rss)/(1<<20), 2))
	}
	s.Add(objectPath, MetricGoroutines, g)
	if cpu, ok := cpuSeconds(); ok {
		s.Add(objectPath, MetricCPUSeconds, round(cpu, 3))
	}
	if n, ok := openFDs(); ok {
		s.Add(objectPath, MetricOpenFDs, float64(n))
	}
	// ReadMemStats stops the world for a few microseconds; once per
	// publishing interval is nothing.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.Add(objectPath, MetricGCPauseTotalMS, round(float64(ms.PauseTotalNs)/1e6, 3))
	last := 0.0
	if ms.NumGC > 0 {
		last = float64(ms.PauseNs[(ms.NumGC+255)%256]) / 1e6
	}
	s.Add(objectPath, MetricGCPauseLastMS, round(last, 3))
	return nil
}

// round keeps the JSON short: "80.25" rather than "80.24609375".
func round(f float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(f*p+0.5)) / p
}
