package carbon

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

// splitFrames cuts buf into pickle frame payloads at their length prefixes.
func splitFrames(t testing.TB, buf []byte) [][]byte {
	t.Helper()
	var frames [][]byte
	for len(buf) > 0 {
		require.GreaterOrEqual(t, len(buf), 4, "truncated length prefix")
		n := int(binary.BigEndian.Uint32(buf))
		require.LessOrEqual(t, n, len(buf)-4, "frame longer than the buffer")
		frames = append(frames, buf[4:4+n])
		buf = buf[4+n:]
	}
	return frames
}

// unpickled is one (path, (ts, value)) tuple as gopickle read it back.
type unpickled struct {
	Path    string
	Time    float64
	TimeInt bool // ts came back as an int (BININT)
	Value   float64
}

// unpickle reads one frame payload with gopickle. gopickle can panic on
// malformed input, and a panic must fail the test, not kill the fuzzer.
func unpickle(frame []byte) (out []unpickled, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gopickle panicked: %v", r)
		}
	}()
	v, err := pickle.Loads(string(frame))
	if err != nil {
		return nil, err
	}
	list, ok := v.(*types.List)
	if !ok {
		return nil, fmt.Errorf("top level is %T, want list", v)
	}
	for i := 0; i < list.Len(); i++ {
		outer, ok := list.Get(i).(*types.Tuple)
		if !ok || outer.Len() != 2 {
			return nil, fmt.Errorf("item %d is %#v, want a 2-tuple", i, list.Get(i))
		}
		path, ok := outer.Get(0).(string)
		if !ok {
			return nil, fmt.Errorf("item %d path is %T", i, outer.Get(0))
		}
		inner, ok := outer.Get(1).(*types.Tuple)
		if !ok || inner.Len() != 2 {
			return nil, fmt.Errorf("item %d datapoint is %#v, want a 2-tuple", i, outer.Get(1))
		}
		u := unpickled{Path: path}
		switch ts := inner.Get(0).(type) {
		case int:
			u.Time, u.TimeInt = float64(ts), true
		case float64:
			u.Time = ts
		default:
			return nil, fmt.Errorf("item %d ts is %T", i, ts)
		}
		if u.Value, ok = inner.Get(1).(float64); !ok {
			return nil, fmt.Errorf("item %d value is %T", i, inner.Get(1))
		}
		out = append(out, u)
	}
	return out, nil
}

// requireSameSamples checks that got holds want exactly: same paths, and
// timestamps and values with the same bits (so NaN and -0 count too).
func requireSameSamples(t testing.TB, want []metric.Sample, got []unpickled) {
	t.Helper()
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		require.Equal(t, w.Path, g.Path, "path of sample %d", i)
		_, isInt := int32Time(w.Time)
		require.Equal(t, isInt, g.TimeInt, "ts of sample %d (%v) as int", i, w.Time)
		if isInt {
			require.Equal(t, w.Time, g.Time, "ts of sample %d", i) // -0 comes back as 0
		} else {
			require.Equal(t, math.Float64bits(w.Time), math.Float64bits(g.Time), "ts of sample %d: %v vs %v", i, w.Time, g.Time)
		}
		require.Equal(t, math.Float64bits(w.Value), math.Float64bits(g.Value), "value of sample %d: %v vs %v", i, w.Value, g.Value)
	}
}

// realisticSamples is a batch like the ones voltha's KPI topics produce:
// long dotted paths, a wall-clock timestamp, values that are counters or
// gauges with three decimals.
func realisticSamples(n int) []metric.Sample {
	metrics := []string{"rss-mb", "cpu-pct", "deferreds", "tx-bytes", "rx-bytes", "open-fds"}
	out := make([]metric.Sample, n)
	for i := range out {
		v := float64(i * 37 % 10007)
		if i%2 == 1 {
			v = float64(i*7919%100000) / 1000 // three decimals
		}
		out[i] = metric.Sample{
			Path:  fmt.Sprintf("voltha.internal.compose_voltha_%d.%s", i%50, metrics[i%len(metrics)]),
			Time:  1700000000 + float64(i/100),
			Value: v,
		}
	}
	return out
}
