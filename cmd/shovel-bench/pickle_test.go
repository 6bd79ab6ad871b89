package main

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/outputs/carbon"
	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/metric"
)

// frames splits AppendPickle's output into payloads (length prefixes removed).
func frames(t testing.TB, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), 4)
		n := int(binary.BigEndian.Uint32(b))
		require.GreaterOrEqual(t, len(b), 4+n)
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

type got struct {
	path      string
	ts, value float64
	tsBits    uint64
	valueBits uint64
}

func fast(t *testing.T, payload []byte) []got {
	var out []got
	_, err := decodePickleFrame(payload, func(p []byte, ts, v float64) {
		out = append(out, got{string(p), ts, v, math.Float64bits(ts), math.Float64bits(v)})
	})
	require.NoError(t, err)
	return out
}

func slow(t *testing.T, payload []byte) []got {
	s, err := carbontest.DecodePickle(payload)
	require.NoError(t, err)
	var out []got
	for _, x := range s {
		out = append(out, got{x.Path, x.Time, x.Value, math.Float64bits(x.Time), math.Float64bits(x.Value)})
	}
	return out
}

// TestDecodePickleMatchesGopickle checks the bench's fast decoder against
// gopickle (what carbontest, and in spirit Carbon, uses) on the encoder's
// real output, bit for bit, including the timestamp and value edge cases.
func TestDecodePickleMatchesGopickle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	edge := []float64{0, -0.0, 1, -1, 0.001, 1e300, -1e-300, math.MaxInt32, math.MinInt32,
		math.MaxInt32 + 1, math.MinInt32 - 1, 1480000000.5, math.Inf(1), math.Inf(-1), math.NaN()}
	tests := []struct {
		name     string
		samples  []metric.Sample
		maxFrame int
	}{
		{"one", []metric.Sample{{Path: "a.b", Time: 1480000000, Value: 12}}, 0},
		{"unicode path", []metric.Sample{{Path: "héllo.wörld.日本", Time: 1, Value: 0.5}}, 0},
		{"edges", func() []metric.Sample {
			var s []metric.Sample
			for _, ts := range edge {
				for _, v := range edge {
					s = append(s, metric.Sample{Path: "edge.x", Time: ts, Value: v})
				}
			}
			return s
		}(), 0},
		{"workload, split into small frames", func() []metric.Sample {
			var s []metric.Sample
			for i := range 300 {
				for j := range 10 {
					s = append(s, metric.Sample{Path: "voltha.bench.dev000.obj0.kpi0", Time: float64(testBase + i), Value: value(i, j)})
				}
			}
			return s
		}(), 4096},
		{"random", func() []metric.Sample {
			s := make([]metric.Sample, 5000)
			for i := range s {
				s[i] = metric.Sample{Path: "r.x" + string(rune('a'+i%26)), Time: rng.Float64() * 2e9, Value: rng.NormFloat64() * 1e6}
				if i%2 == 0 {
					s[i].Time = math.Trunc(s[i].Time)
				}
			}
			return s
		}(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf, skipped := carbon.AppendPickle(nil, tt.samples, tt.maxFrame)
			require.Zero(t, skipped)
			var n int
			for _, f := range frames(t, buf) {
				a, b := fast(t, f), slow(t, f)
				require.Equal(t, len(b), len(a))
				for i := range a {
					require.Equal(t, b[i].path, a[i].path)
					require.Equal(t, b[i].tsBits, a[i].tsBits, "ts of %d", i)
					require.Equal(t, b[i].valueBits, a[i].valueBits, "value of %d", i)
				}
				n += len(a)
			}
			require.Equal(t, len(tt.samples), n)
		})
	}
}

func TestDecodePickleRejects(t *testing.T) {
	buf, _ := carbon.AppendPickle(nil, []metric.Sample{{Path: "a.b", Time: 1, Value: 2}}, 0)
	good := buf[4:]
	for _, tt := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)-3]},
		{"no STOP", good[:len(good)-1]},
		{"trailing byte", append(append([]byte(nil), good...), '.')},
		{"protocol 3", append([]byte{opProto, 3}, good[2:]...)},
		{"unknown opcode", append(append([]byte(nil), good[:4]...), 'K', 1, opAppends, opStop)},
		{"huge path length", append(append([]byte(nil), good[:4]...), opBinUnicode, 0xff, 0xff, 0xff, 0x7f)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodePickleFrame(tt.payload, func([]byte, float64, float64) {})
			require.Error(t, err)
		})
	}
}

// TestWorkloadRoundTrip checks that what the bench produces is what the
// receiver expects, through the real slice decoder's number parsing: every
// sample of a produced message passes check, and a changed value does not.
func TestWorkloadRoundTrip(t *testing.T) {
	w := &workload{messages: 2000, samples: 10, objects: 3, bad: 0.1, base: recentBase(2000)}
	bad := 0
	for i := range w.messages {
		if w.isBad(i) {
			bad++
		}
	}
	require.InDelta(t, 200, bad, 60, "share of bad messages")
	require.Equal(t, w.messages-bad, w.goodMessages())
	for i := range 50 {
		if w.isBad(i) {
			continue
		}
		msg := w.message(i, nil)
		samples := decodeSlice(t, msg)
		require.Len(t, samples, w.samples)
		for _, s := range samples {
			idx, why := w.check([]byte(s.Path), s.Time, s.Value)
			require.Equal(t, i, idx, "%s: %s", s.Path, why)
			idx, _ = w.check([]byte(s.Path), s.Time, math.Nextafter(s.Value, math.Inf(1)))
			require.Equal(t, -1, idx)
		}
	}
}

func BenchmarkDecodePickle(b *testing.B) {
	s := make([]metric.Sample, 5000)
	for i := range s {
		s[i] = metric.Sample{Path: "voltha.bench.dev042.obj1.kpi4", Time: float64(testBase + i), Value: value(i, 4)}
	}
	buf, _ := carbon.AppendPickle(nil, s, 0)
	fs := frames(b, buf)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, f := range fs {
				if _, err := decodePickleFrame(f, func([]byte, float64, float64) {}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(s)), "ns/sample")
	})
	b.Run("gopickle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, f := range fs {
				if _, err := carbontest.DecodePickle(f); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(s)), "ns/sample")
	})
}

func decodeSlice(t *testing.T, msg []byte) []metric.Sample {
	f, err := decoders.Lookup("slice")
	require.NoError(t, err)
	dec, err := f(nil, metric.Env{Name: "slice"})
	require.NoError(t, err)
	var res metric.Result
	require.NoError(t, dec.Decode(&metric.Message{Value: msg}, &res))
	require.Empty(t, res.Rejected)
	return res.Samples
}

const testBase = 1_480_000_000
