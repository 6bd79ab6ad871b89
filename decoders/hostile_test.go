package decoders_test

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Every decoder meets the same hostile input with a reason, without
// copying or building anything in proportion to it, and never with a crash
// or an unsafe path. (Work per byte is shown by the decoders' benchmarks,
// not by a clock here.)
func TestHostileInput(t *testing.T) {
	decs := map[string]metric.Decoder{
		"slice":            newSliceDecoder(t, nil),
		"json":             newDecoder(t, "json", onuStats),
		"carbon-plaintext": newDecoder[decoders.PlaintextConfig](t, "carbon-plaintext", nil),
		"carbon-pickle":    newDecoder[decoders.PickleConfig](t, "carbon-pickle", nil),
	}
	huge := bytes.Repeat([]byte("a"), 100<<20)
	deepJSON := []byte(`{"ts":1,"collected_at":1,"data":` + strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000) + "}")
	tests := []struct {
		name   string
		value  []byte
		reason map[string]string // decoder → whole-message reason
	}{
		{"100 MB", huge, map[string]string{"slice": metric.ReasonTooLarge, "json": metric.ReasonTooLarge,
			"carbon-plaintext": metric.ReasonTooLarge, "carbon-pickle": metric.ReasonTooLarge}},
		{"10 000-deep nesting", deepJSON, map[string]string{"slice": decoders.ReasonTooDeep, "json": decoders.ReasonTooDeep,
			"carbon-pickle": decoders.ReasonInvalidPickle}}, // '{' is no opcode it allows
		{"invalid UTF-8", []byte("{\"ts\":1,\"data\":{\"\xff\":{\"a\":1}}}"), map[string]string{"slice": metric.ReasonInvalidJSON,
			"json": metric.ReasonInvalidJSON, "carbon-pickle": decoders.ReasonInvalidPickle}},
	}
	for _, tt := range tests {
		for name, dec := range decs {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				var out metric.Result
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				err := dec.Decode(&metric.Message{Value: tt.value}, &out)
				runtime.ReadMemStats(&after)
				require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "allocated while decoding")
				checkInvariants(t, out, err)
				if want, ok := tt.reason[name]; ok {
					require.Equal(t, want, metric.ReasonOf(err), "err: %v", err)
				}
			})
		}
	}
}

// A newline, a space or a carriage return in a name never reaches Carbon
// as a line of its own, whichever decoder read it.
func TestNewlineInjection(t *testing.T) {
	tests := []struct {
		dec   metric.Decoder
		value string
		want  string
	}{
		{newSliceDecoder(t, nil), `{"ts":1,"data":{"a":{"evil\n1 2\r\nx.y 3 4":5}}}`, "a.evil_1_2_x.y_3_4 5 1\n"},
		{newSliceDecoder(t, nil), `{"ts":1,"slice_data":[{"metadata":{"device_id":"evil\n1 2\r\nx.y 3 4","title":"t"},"metrics":{"m":5}}]}`,
			"voltha.evil_1_2_x_y_3_4.t.m 5 1\n"},
		{newDecoder(t, "json", onuStats), `{"device":{"id":"evil\n1 2\r\nx.y 3 4"},"port":"p","collected_at":1000,"counters":{"m":5},"optics":{"rx_power_dbm":1}}`,
			"voltha.onu.evil_1_2_x_y_3_4.p.optics.rx_power_dbm 1 1\nvoltha.onu.evil_1_2_x_y_3_4.p.m 5 1\n"},
	}
	for _, tt := range tests {
		var out metric.Result
		err := tt.dec.Decode(&metric.Message{Value: []byte(tt.value)}, &out)
		require.NoError(t, err)
		require.Equal(t, tt.want, render(out, nil))
	}
}

// One decoder value serves every worker: run each from several goroutines
// (most useful under -race); none may see another's data.
func TestDecodersConcurrent(t *testing.T) {
	pickled := readFile(t, "testdata/pickle/bench_10.pickle")
	tests := map[string]struct {
		dec   metric.Decoder
		value []byte
	}{
		"slice data":       {newSliceDecoder(t, nil), []byte(benchSliceMessage)},
		"slice slice_data": {newSliceDecoder(t, nil), []byte(benchSliceDataMessage)},
		"json":             {newDecoder(t, "json", onuStats), []byte(benchJSONMessage)},
		"carbon-pickle":    {newDecoder[decoders.PickleConfig](t, "carbon-pickle", nil), pickled},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var want metric.Result
			require.NoError(t, tt.dec.Decode(&metric.Message{Value: tt.value}, &want))
			done := make(chan struct{})
			for range 4 {
				go func() {
					defer func() { done <- struct{}{} }()
					var out metric.Result
					for range 200 {
						out.Reset()
						if err := tt.dec.Decode(&metric.Message{Value: tt.value}, &out); err != nil {
							t.Error(err)
							return
						}
						if render(out, nil) != render(want, nil) {
							t.Errorf("got\n%s\nwant\n%s", render(out, nil), render(want, nil))
							return
						}
					}
				}()
			}
			for range 4 {
				<-done
			}
		})
	}
}
