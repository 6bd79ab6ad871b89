package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/shovel-metrics/shovel/router/memory"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Limits is the `limits:` section: the bounds shovel holds every message
// to, whatever its producer sends.
type Limits struct {
	// OutputRatio and OutputMin set each message's output budget: what
	// its samples and their paths may cost (metric.Cost), at most the
	// larger of OutputMin and OutputRatio times the message's size (value,
	// key and headers). A message that would decode into more is rejected
	// whole as output_budget, and dead-lettered.
	OutputRatio float64  `mapstructure:"output_ratio"`
	OutputMin   ByteSize `mapstructure:"output_min"`
	// Memory is the memory budget (see docs/memory.md): the bytes shovel
	// may hold for messages, decoded samples, queued batches and dead
	// letters in flight before it pauses consumption.
	Memory ByteSize `mapstructure:"memory"`
}

// DefaultLimits returns the limits a file that leaves them out gets.
func DefaultLimits() Limits {
	return Limits{OutputRatio: metric.DefaultOutputRatio, OutputMin: metric.DefaultOutputMin, Memory: memory.DefaultLimit}
}

// Bounds of the output budget's settings: below a ratio of 1 even a
// message of plain Carbon lines costs more than it may (a sample costs its
// path and 32 bytes, more than the line it came from), and the floor must
// hold one sample of the longest path a decoder passes on.
const (
	minOutputRatio          = 1
	maxOutputRatio          = 1 << 16
	minOutputMin            = ByteSize(metric.MaxPathLen + metric.SampleOverhead)
	maxOutputMin   ByteSize = 1 << 30
	minMemory               = ByteSize(memory.MinLimit)
	maxMemory      ByteSize = 1 << 40
)

// OutputLimits returns the router's form of the output budget.
func (l Limits) OutputLimits() metric.OutputLimits {
	return metric.OutputLimits{Ratio: l.OutputRatio, Min: int(l.OutputMin)}
}

func (l Limits) validate(bad func(key, format string, args ...any)) {
	if r := l.OutputRatio; math.IsNaN(r) || r < minOutputRatio || r > maxOutputRatio {
		bad("limits.output_ratio", "must be between %d and %d, got %v", minOutputRatio, maxOutputRatio, r)
	}
	if m := l.OutputMin; m < minOutputMin || m > maxOutputMin {
		bad("limits.output_min", "must be between %d bytes (one sample of the longest path) and %d, got %d", minOutputMin, maxOutputMin, m)
	}
	if m := l.Memory; m < minMemory || m > maxMemory {
		bad("limits.memory", "must be between %d (4MiB) and %d (1TiB) bytes, got %d", minMemory, maxMemory, m)
	}
}

// ByteSize is a number of bytes, written in YAML as a number (65536) or
// with a unit: 64KiB, 256MiB, 1GiB (powers of 1024), or 64kB, 256MB, 1GB
// (powers of 1000).
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// ParseByteSize reads a size as ByteSize documents it.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size in bytes (such as 65536, 64KiB or 256MiB)", s)
	}
	return ByteSize(n * mult), nil
}

// byteSizeHook lets a ByteSize field take a string with a unit.
func byteSizeHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(ByteSize(0)) || from.Kind() != reflect.String {
		return data, nil
	}
	return ParseByteSize(data.(string))
}
