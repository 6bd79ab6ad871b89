package decoders_test

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

func TestPlaintextGolden(t *testing.T) {
	testGolden(t, newDecoder[decoders.PlaintextConfig](t, "carbon-plaintext", nil), "plaintext", ".txt")
}

func TestPlaintextLimits(t *testing.T) {
	dec := newDecoder[decoders.PlaintextConfig](t, "carbon-plaintext", func(c *decoders.PlaintextConfig) { c.MaxLines = 2 })
	var out metric.Result
	err := dec.Decode(&metric.Message{Value: []byte("a 1 1\nb 1 1\nc 1 1\n")}, &out)
	require.Equal(t, metric.ReasonTooLarge, metric.ReasonOf(err))

	dec = newDecoder[decoders.PlaintextConfig](t, "carbon-plaintext", nil)
	err = dec.Decode(&metric.Message{Value: bytes.Repeat([]byte("a 1 1\n"), 1<<20/6+1)}, &out)
	require.Equal(t, metric.ReasonTooLarge, metric.ReasonOf(err))
	require.Empty(t, out.Samples)

	dec = newDecoder[decoders.PlaintextConfig](t, "carbon-plaintext", func(c *decoders.PlaintextConfig) { c.MissingTimestamp = "receive_time" })
	require.NoError(t, dec.Decode(&metric.Message{Value: []byte("a 1"), Timestamp: goldenReceiveTime}, &out))
	require.Equal(t, []metric.Sample{{Path: "a", Time: 1700000000, Value: 1}}, out.Samples)
}

func FuzzPlaintext(f *testing.F) {
	for _, in := range goldenFiles(f, "plaintext", ".txt") {
		f.Add(readFile(f, in))
	}
	dec := newDecoder[decoders.PlaintextConfig](f, "carbon-plaintext", nil)
	f.Fuzz(func(t *testing.T, value []byte) {
		var out metric.Result
		msg := &metric.Message{Value: value, Timestamp: goldenReceiveTime}
		err := dec.Decode(msg, &out)
		checkInvariants(t, out, err)
		checkBudget(t, dec, msg)
		// Every kept line gives one sample or one rejection.
		lines := 0
		for _, l := range strings.Split(string(value), "\n") {
			if strings.Trim(strings.TrimSuffix(l, "\r"), " \t") != "" {
				lines++
			}
		}
		if err == nil {
			require.Equal(t, lines, len(out.Samples)+len(out.Rejected))
		}
	})
}

// checkInvariants is what every decoder promises for any input: a
// whole-message error is a *metric.RejectError and comes alone; every
// sample has a path Carbon accepts and finite, non-negative numbers.
func checkInvariants(t *testing.T, out metric.Result, err error) {
	t.Helper()
	if err != nil {
		var re *metric.RejectError
		require.ErrorAs(t, err, &re)
		require.NotEmpty(t, re.Reason)
		require.Empty(t, out.Samples, "samples and a whole-message error")
		require.Empty(t, out.Rejected, "rejections and a whole-message error")
	}
	for _, s := range out.Samples {
		require.True(t, metric.ValidPath(s.Path), "path %q", s.Path)
		if metric.IsTagged(s.Path) {
			require.True(t, metric.Normalized(s.Path), "tagged path %q is not in carbon's normalized form", s.Path)
		}
		name, _ := metric.SplitTagged(s.Path) // a tag value may hold ".."
		require.NotContains(t, name, "..")
		require.False(t, math.IsInf(s.Value, 0) || math.IsNaN(s.Value), "sample %+v", s)
		require.False(t, math.IsInf(s.Time, 0) || math.IsNaN(s.Time) || s.Time < 0, "sample %+v", s)
	}
	for _, r := range out.Rejected {
		require.NotEmpty(t, r.Reason)
		require.NotContains(t, r.Reason, " ")
	}
	for _, r := range out.Repaired {
		require.True(t, strings.HasPrefix(r.Reason, "tag_"), "repair %+v", r)
	}
}

func BenchmarkPlaintext(b *testing.B) {
	var msg strings.Builder
	for i := range 10 {
		fmt.Fprintf(&msg, "voltha.olt%d.port%d.metric_%d %d.5 %d\n", i%3, i%2, i, i*10, 1480000000+i)
	}
	benchDecoder(b, newDecoder[decoders.PlaintextConfig](b, "carbon-plaintext", nil), &metric.Message{Value: []byte(msg.String())})
}

// BenchmarkPlaintextTagged is BenchmarkPlaintext with three tags per
// name, written out of carbon's order: what normalizing them costs.
func BenchmarkPlaintextTagged(b *testing.B) {
	var msg strings.Builder
	for i := range 10 {
		fmt.Fprintf(&msg, "voltha.metric_%d;port=port%d;device_id=olt%d;devicetype=openolt %d.5 %d\n", i, i%2, i%3, i*10, 1480000000+i)
	}
	benchDecoder(b, newDecoder[decoders.PlaintextConfig](b, "carbon-plaintext", nil), &metric.Message{Value: []byte(msg.String())})
}

// hostileTagLines is plaintext of about size bytes, lines of about
// lineSize bytes whose names carry distinct tags in reverse order: the
// worst case of sorting them.
func hostileTagLines(size, lineSize int) []byte {
	var b bytes.Buffer
	for b.Len() == 0 || b.Len() < size-lineSize {
		start := b.Len()
		b.WriteString("a")
		for i := lineSize / 10; b.Len()-start < lineSize-32 && i > 0; i-- {
			fmt.Fprintf(&b, ";t%06d=v", i)
		}
		b.WriteString(" 1 1700000000\n")
	}
	return b.Bytes()
}

// TestPlaintextManyTags: a name whose tags are more than four times the
// longest path is refused as too long without reading them (a 1 MB name
// of 100 000 tags allocated 23 MB and took a sort before, 36 s of it when
// the sort was quadratic); names just under that are read, each tag held
// charged, and a message of them allocates within its budget.
func TestPlaintextManyTags(t *testing.T) {
	dec := newDecoder[decoders.PlaintextConfig](t, "carbon-plaintext", nil)
	decode := func(value []byte, budget int) (metric.Result, error, uint64) {
		msg := &metric.Message{Value: value}
		out := metric.Result{Budget: budget}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err := dec.Decode(msg, &out)
		runtime.ReadMemStats(&after)
		checkInvariants(t, out, err)
		return out, err, after.TotalAlloc - before.TotalAlloc
	}
	limits := metric.DefaultOutputLimits()

	huge := hostileTagLines(1<<20-64, 1<<20-64)
	out, err, allocated := decode(huge, limits.Budget(len(huge)))
	require.NoError(t, err)
	require.Len(t, out.Rejected, 1)
	require.Equal(t, decoders.ReasonPathTooLong, out.Rejected[0].Reason)
	require.Less(t, allocated, uint64(64<<10), "refused unread: %d allocated", allocated)

	lines := hostileTagLines(1<<20-64, 4*4096)
	out, err, allocated = decode(lines, limits.Budget(len(lines)))
	require.NoError(t, err)
	require.Greater(t, len(out.Rejected), 60)
	require.Equal(t, decoders.ReasonPathTooLong, out.Rejected[0].Reason)
	require.Greater(t, out.Spent(), len(out.Rejected)*1_500*32, "each tag held is charged")
	require.Less(t, allocated, uint64(out.Budget), "allocated %d bytes", allocated)
}

func BenchmarkPlaintextManyTags(b *testing.B) {
	dec := newDecoder[decoders.PlaintextConfig](b, "carbon-plaintext", nil)
	msg := &metric.Message{Value: hostileTagLines(1<<20-64, 4*4096)}
	b.SetBytes(int64(len(msg.Value)))
	b.ReportAllocs()
	for b.Loop() {
		out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
		_ = dec.Decode(msg, &out)
	}
}
