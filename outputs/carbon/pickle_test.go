package carbon

import (
	"bytes"
	"encoding/hex"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

func TestAppendPickleBytes(t *testing.T) {
	// Written out by hand from Lib/pickle.py so that a change to the wire
	// format cannot pass unnoticed by round-tripping through our own idea of it.
	got, skipped := AppendPickle(nil, []metric.Sample{{Path: "a.b", Time: 1, Value: 2}}, 0)
	require.Zero(t, skipped)
	want := "0000001e" + // payload length 30
		"8002" + "5d" + "28" + // PROTO 2, EMPTY_LIST, MARK
		"58" + "03000000" + "612e62" + // BINUNICODE "a.b"
		"4a" + "01000000" + // BININT 1
		"47" + "4000000000000000" + // BINFLOAT 2.0
		"86" + "86" + // TUPLE2 TUPLE2
		"65" + "2e" // APPENDS STOP
	require.Equal(t, want, hex.EncodeToString(got))
}

func TestAppendPickle(t *testing.T) {
	tests := []struct {
		name        string
		samples     []metric.Sample
		wantSkipped int
	}{
		{"empty", nil, 0},
		{"one int", []metric.Sample{{Path: "a.b", Time: 1700000000, Value: 12}}, 0},
		{"three decimals", []metric.Sample{{Path: "voltha.internal.compose_voltha_1.rss-mb", Time: 1700000000, Value: 24.54}}, 0},
		{"fractional ts", []metric.Sample{{Path: "a", Time: 1700000000.25, Value: 1}}, 0},
		{"ts above int32", []metric.Sample{{Path: "a", Time: math.MaxInt32 + 1, Value: 1}}, 0},
		{"ts at int32 edges", []metric.Sample{{Path: "a", Time: math.MaxInt32, Value: 1}, {Path: "b", Time: math.MinInt32, Value: 1}}, 0},
		{"negative zero", []metric.Sample{{Path: "a", Time: math.Copysign(0, -1), Value: math.Copysign(0, -1)}}, 0},
		{"non-finite", []metric.Sample{
			{Path: "nan", Time: 1, Value: math.NaN()},
			{Path: "inf", Time: math.Inf(1), Value: math.Inf(-1)},
			{Path: "nants", Time: math.NaN(), Value: 1},
		}, 0},
		{"utf8 path", []metric.Sample{{Path: "héllo.wörld.日本", Time: 1, Value: 1}}, 0},
		{"longest valid path", []metric.Sample{{Path: strings.Repeat("x", metric.MaxPathLen), Time: 1, Value: 1}}, 0},
		{"invalid utf8 left out", []metric.Sample{
			{Path: "ok.1", Time: 1, Value: 1},
			{Path: "bad.\xff", Time: 2, Value: 2},
			{Path: "ok.2", Time: 3, Value: 3},
		}, 1},
		{"path too long for a frame left out", []metric.Sample{
			{Path: strings.Repeat("y", DefaultPickleFrame), Time: 1, Value: 1},
			{Path: "ok", Time: 2, Value: 2},
		}, 1},
		{"only bad samples", []metric.Sample{{Path: "\xc0", Time: 1, Value: 1}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			buf, skipped := AppendPickle(append([]byte(nil), prefix...), tt.samples, 0)
			require.Equal(t, tt.wantSkipped, skipped)
			require.True(t, bytes.HasPrefix(buf, prefix), "AppendPickle must not touch what dst held")

			var got []unpickled
			for _, f := range splitFrames(t, buf[len(prefix):]) {
				require.LessOrEqual(t, len(f), DefaultPickleFrame)
				u, err := unpickle(f)
				require.NoError(t, err)
				require.NotEmpty(t, u, "empty frame")
				got = append(got, u...)
			}
			requireSameSamples(t, sendable(tt.samples, DefaultPickleFrame), got)
		})
	}
}

// sendable is the samples AppendPickle is expected to keep.
func sendable(samples []metric.Sample, maxPayload int) []metric.Sample {
	var out []metric.Sample
	for _, s := range samples {
		if pickledSize(&s) <= maxPayload-frameOverhead && isUTF8(s.Path) {
			out = append(out, s)
		}
	}
	return out
}

func isUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestAppendPickleSplitsFrames(t *testing.T) {
	samples := realisticSamples(500)
	for _, limit := range []int{frameOverhead + 60, 100, 257, 1000, 4096} {
		t.Run("max "+strconv.Itoa(limit), func(t *testing.T) {
			buf, skipped := AppendPickle(nil, samples, limit)
			want := sendable(samples, limit)
			require.Equal(t, len(samples)-len(want), skipped)

			frames := splitFrames(t, buf)
			var got []unpickled
			for i, f := range frames {
				require.LessOrEqual(t, len(f), limit, "frame %d", i)
				u, err := unpickle(f)
				require.NoError(t, err, "frame %d", i)
				require.NotEmpty(t, u, "frame %d is empty", i)
				if i < len(frames)-1 {
					// Frames are filled greedily: the next sample would not have fit.
					next := want[len(got)+len(u)]
					require.Greater(t, len(f)+pickledSize(&next), limit, "frame %d was closed early", i)
				}
				got = append(got, u...)
			}
			requireSameSamples(t, want, got)
		})
	}
}

func TestAppendPickleExactFit(t *testing.T) {
	s := metric.Sample{Path: "abcdefgh", Time: 1, Value: 2}
	size := frameOverhead + pickledSize(&s)

	buf, skipped := AppendPickle(nil, []metric.Sample{s, s}, size)
	require.Zero(t, skipped)
	require.Len(t, splitFrames(t, buf), 2, "one sample per frame when exactly one fits")

	buf, skipped = AppendPickle(nil, []metric.Sample{s, s}, size-1)
	require.Equal(t, 2, skipped)
	require.Empty(t, buf)
}

func TestAppendPickleFrameLimit(t *testing.T) {
	// Far more than one frame's worth with the default and a too-large limit.
	samples := realisticSamples(60000)
	for _, limit := range []int{0, -1, MaxPickleFrame + 1} {
		buf, skipped := AppendPickle(nil, samples, limit)
		require.Zero(t, skipped)
		frames := splitFrames(t, buf)
		require.Greater(t, len(frames), 1)
		n := 0
		for _, f := range frames {
			require.LessOrEqual(t, len(f), DefaultPickleFrame)
			u, err := unpickle(f)
			require.NoError(t, err)
			n += len(u)
		}
		require.Equal(t, len(samples), n)
	}
}

// TestPickleLoadsInPython feeds frames to the unpickler Carbon itself
// uses, when a python3 is at hand: gopickle is more lenient than Python.
func TestPickleLoadsInPython(t *testing.T) {
	if testing.Short() {
		t.Skip("runs python3")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	samples := []metric.Sample{
		{Path: "a.b", Time: 1700000000, Value: 12},
		{Path: "héllo.wörld", Time: 1700000000.5, Value: 24.54},
		{Path: "c", Time: math.MaxInt32 + 1, Value: math.Inf(1)},
	}
	buf, _ := AppendPickle(nil, samples, 0)
	// Read like carbon/protocols.py: an Int32StringReceiver, then
	// (metric, (timestamp, value)) = raw; float() both.
	script := `
import pickle, struct, sys
data = sys.stdin.buffer.read()
while data:
    (n,) = struct.unpack("!L", data[:4])
    for raw in pickle.loads(data[4:4+n]):
        (metric, (ts, value)) = raw
        print(metric, repr(float(ts)), repr(float(value)), type(ts).__name__)
    data = data[4+n:]
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(buf)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8")
	out, err := cmd.Output()
	require.NoError(t, err)
	require.Equal(t, "a.b 1700000000.0 12.0 int\n"+
		"héllo.wörld 1700000000.5 24.54 float\n"+
		"c 2147483648.0 inf float\n", string(out))
}

func FuzzPickle(f *testing.F) {
	f.Add("voltha.internal.compose_voltha_1.rss-mb", 1700000000.0, 24.54, uint16(0))
	f.Add("a.b|c.d|e", 1.5, 12.0, uint16(64))
	f.Add("bad.\xff|ok", math.MaxInt32+1.0, math.NaN(), uint16(40))
	f.Add("héllo|"+strings.Repeat("z", 300), -1.0, math.Inf(-1), uint16(100))
	f.Add("", 0.0, 0.0, uint16(1))
	f.Fuzz(func(t *testing.T, paths string, ts, value float64, limit uint16) {
		var samples []metric.Sample
		for i, p := range strings.Split(paths, "|") {
			samples = append(samples, metric.Sample{Path: p, Time: ts + float64(i), Value: value * float64(i+1)})
		}
		maxPayload := int(limit)
		buf, skipped := AppendPickle(nil, samples, maxPayload)
		if maxPayload <= 0 {
			maxPayload = DefaultPickleFrame
		}
		want := sendable(samples, maxPayload)
		require.Equal(t, len(samples)-len(want), skipped)

		var got []unpickled
		for _, frame := range splitFrames(t, buf) {
			require.LessOrEqual(t, len(frame), maxPayload)
			u, err := unpickle(frame)
			require.NoError(t, err)
			require.NotEmpty(t, u)
			got = append(got, u...)
		}
		requireSameSamples(t, want, got)
	})
}

func BenchmarkAppendPickle(b *testing.B) {
	samples := realisticSamples(1000)
	buf, _ := AppendPickle(nil, samples, 0)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendPickle(buf[:0], samples, 0)
	}
}
