package carbon

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

func TestAppendPlaintext(t *testing.T) {
	tests := []struct {
		name        string
		samples     []metric.Sample
		want        string
		wantSkipped int
	}{
		{"empty", nil, "", 0},
		{"int value", []metric.Sample{{Path: "a.b", Time: 1700000000, Value: 12}}, "a.b 12 1700000000\n", 0},
		{"three decimals", []metric.Sample{{Path: "voltha.internal.compose_voltha_1.rss-mb", Time: 1700000000, Value: 24.54}},
			"voltha.internal.compose_voltha_1.rss-mb 24.54 1700000000\n", 0},
		{"fractional ts", []metric.Sample{{Path: "a", Time: 1700000000.25, Value: -3.5}}, "a -3.5 1700000000.25\n", 0},
		{"no exponent", []metric.Sample{{Path: "a", Time: 1e10, Value: 1e21}, {Path: "b", Time: 1, Value: 1e-7}},
			"a 1000000000000000000000 10000000000\nb 0.0000001 1\n", 0},
		// Beyond 2^53 the shortest form that reads back exactly ends in zeros.
		{"beyond 2^53", []metric.Sample{{Path: "a", Time: 1, Value: 1 << 60}}, "a 1152921504606847000 1\n", 0},
		{"just below 2^53", []metric.Sample{{Path: "a", Time: 1, Value: 1<<53 - 1}}, "a 9007199254740991 1\n", 0},
		{"negative zero", []metric.Sample{{Path: "a", Time: 0, Value: math.Copysign(0, -1)}}, "a -0 0\n", 0},
		{"non-finite", []metric.Sample{{Path: "a", Time: 1, Value: math.NaN()}, {Path: "b", Time: 1, Value: math.Inf(-1)}},
			"a NaN 1\nb -Inf 1\n", 0},
		{"utf8 path", []metric.Sample{{Path: "héllo.wörld", Time: 1, Value: 1}}, "héllo.wörld 1 1\n", 0},
		{"line breakers left out", []metric.Sample{
			{Path: "ok.1", Time: 1, Value: 1},
			{Path: "evil 1 2\nx.y", Time: 2, Value: 2},
			{Path: "tab\tx", Time: 2, Value: 2},
			{Path: "del\x7f", Time: 2, Value: 2},
			{Path: "", Time: 2, Value: 2},
			{Path: "ok.2", Time: 3, Value: 3},
		}, "ok.1 1 1\nok.2 3 3\n", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped := AppendPlaintext([]byte("keep"), tt.samples)
			require.Equal(t, "keep"+tt.want, string(got))
			require.Equal(t, tt.wantSkipped, skipped)
		})
	}
}

func FuzzPlaintext(f *testing.F) {
	f.Add("voltha.internal.compose_voltha_1.rss-mb", 1700000000.0, 24.54)
	f.Add("a.b|c d|e\nf", 1.5, 12.0)
	f.Add("x", math.MaxInt64+1.0, math.NaN())
	f.Add("héllo|\xff", -1.0, math.Inf(-1))
	f.Add("", 1e-300, 1e300)
	f.Fuzz(func(t *testing.T, paths string, ts, value float64) {
		var samples, want []metric.Sample
		for i, p := range strings.Split(paths, "|") {
			s := metric.Sample{Path: p, Time: ts + float64(i), Value: value * float64(i+1)}
			samples = append(samples, s)
			if lineSafe(p) {
				want = append(want, s)
			}
		}
		buf, skipped := AppendPlaintext(nil, samples)
		require.Equal(t, len(samples)-len(want), skipped)
		if len(want) == 0 {
			require.Empty(t, buf)
			return
		}
		require.True(t, strings.HasSuffix(string(buf), "\n"))
		lines := strings.Split(strings.TrimSuffix(string(buf), "\n"), "\n")
		require.Len(t, lines, len(want))
		for i, line := range lines {
			fields := strings.Split(line, " ")
			require.Len(t, fields, 3, "line %q", line)
			require.Equal(t, want[i].Path, fields[0])
			// Exactly what strconv's shortest 'f' formatting prints, which
			// also means it reads back to the same float64.
			require.Equal(t, strconv.FormatFloat(want[i].Value, 'f', -1, 64), fields[1])
			require.Equal(t, strconv.FormatFloat(want[i].Time, 'f', -1, 64), fields[2])
			if want[i].Time == math.Trunc(want[i].Time) {
				require.NotContains(t, fields[2], ".", "integral ts")
			}
		}
	})
}

func BenchmarkAppendPlaintext(b *testing.B) {
	samples := realisticSamples(1000)
	buf, _ := AppendPlaintext(nil, samples)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendPlaintext(buf[:0], samples)
	}
}
