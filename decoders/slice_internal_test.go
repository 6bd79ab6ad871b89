package decoders

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/metric"
)

// FuzzSliceSinglePass holds the single pass (decodeSinglePass) to the general
// two-pass decoder: on every input the single pass takes, it must give
// exactly the samples and rejections the general decoder gives; on every
// input it gives up on, it must leave the result as it found it.
func FuzzSliceSinglePass(f *testing.F) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "slice", "*.json"))
	require.NoError(f, err)
	for _, in := range inputs {
		b, err := os.ReadFile(in)
		require.NoError(f, err)
		f.Add(b, false)
	}
	f.Add([]byte(`{"data":{"a.b":{"c":1,"d":"2","e":true,"f":null,"g":{}}},"ts":1700000000.5}`), true)
	f.Add([]byte(`{"type":"slice","data":{"a":{"x y":1e400,"":2}},"data":{"b":{"c":3}}}`), true)
	f.Add([]byte(`{"ts":1,"ts":"2","data":{"a":{"b":1}},"prefixes":{}}`), false)
	f.Add([]byte(`{"type":"slice","ts":1484291389.5,"prefixes":{"voltha.simulated_olt.eecd":{"metrics":{"cpu_util":24.54}},"x":{"metrics":{"a b":"1"}}}}`), false)

	decs := map[bool]*slice{} // by missing_timestamp: receive_time or reject
	for _, receiveTime := range []bool{false, true} {
		cfg := DefaultSliceConfig()
		if receiveTime {
			cfg.MissingTimestamp = MissingReceiveTime
		}
		dec, err := newSlice(func(into any) error { *(into.(*SliceConfig)) = cfg; return nil }, metric.Env{Name: "test"})
		require.NoError(f, err)
		decs[receiveTime] = dec.(*slice)
	}

	f.Fuzz(func(t *testing.T, value []byte, receiveTime bool) {
		d := decs[receiveTime]
		msg := &metric.Message{Value: value, Timestamp: time.Unix(1700000000, 0)}
		earlier := metric.Sample{Path: "earlier", Time: 1, Value: 1}
		fast := metric.Result{Samples: []metric.Sample{earlier}}
		if !d.decodeSinglePass(msg, &fast) {
			require.Equal(t, []metric.Sample{earlier}, fast.Samples, "gave up but changed the samples")
			require.Empty(t, fast.Rejected, "gave up but left rejections")
			return
		}
		general := metric.Result{Samples: []metric.Sample{earlier}}
		require.NoError(t, d.decodeGeneral(msg, &general), "the single pass took a message the general decoder rejects")
		require.Equal(t, len(general.Samples), len(fast.Samples))
		for i := range general.Samples {
			g, s := general.Samples[i], fast.Samples[i]
			require.Equal(t, g.Path, s.Path)
			require.Equal(t, math.Float64bits(g.Time), math.Float64bits(s.Time), "time of %s", g.Path)
			require.Equal(t, math.Float64bits(g.Value), math.Float64bits(s.Value), "value of %s", g.Path)
		}
		require.Equal(t, general.Rejected, fast.Rejected)
	})
}

// TestSliceSinglePassTakesTheCommonCase: the single pass is what the
// decoder runs for the data and prefixes shapes, wherever ts is, so its speed is what
// the benchmarks measure.
func TestSliceSinglePassTakesTheCommonCase(t *testing.T) {
	dec, err := newSlice(nil, metric.Env{Name: "test"})
	require.NoError(t, err)
	d := dec.(*slice)
	for _, tc := range []struct {
		in   string
		fast bool
	}{
		{`{"type":"slice","ts":1480000000,"data":{"voltha.internal.abc":{"deferreds":12,"rss-mb":80}}}`, true},
		{`{"data":{"a":{"b":1}},"type":"slice","ts":1480000000}`, true},
		{` { "ts" : 1480000000 , "data" : { "a" : { "b" : "1.5" , "c" : null } } } `, true},
		{`{"type":"slice","ts":1480000000,"prefixes":{"a":{"metrics":{"b":1}}}}`, true},
		{`{"prefixes":{"a":{"x":[1],"metrics":{"b":1},"metrics":{"c":2}},"d":{}},"ts":1480000000}`, true},
		{`{"ts":1480000000,"prefixes":{"a":{"metrics":{"b":1}}},"data":{"c":{"d":1}}}`, false}, // both shapes
		{`{"ts":1480000000,"prefixes":{"a":{"metrics":[1]}}}`, false},
		{`{"type":"slice","ts":1480000000,"slice_data":[]}`, false},
		{`{"type":"slice","ts":"1480000000","data":{"a":{"b":1}}}`, false},
		{`{"type":"slice","data":{"a":{"b":1}}}`, false}, // no ts: rejected by the general decoder
		{`{"type":"slice","ts":1480000000,"data":{"a":{"b":1}}`, false},
		{`{"type":"slice","ts":1480000000,"data":{"a":{"\u0062":1}}}`, false},
		{`{"type":"slice","ts":1480000000,"data":{"a":[1]}}`, false},
	} {
		var out metric.Result
		require.Equal(t, tc.fast, d.decodeSinglePass(&metric.Message{Value: []byte(tc.in)}, &out), tc.in)
	}
}
