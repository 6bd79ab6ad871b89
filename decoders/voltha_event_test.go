package decoders_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

// volthaEvents returns the Event message of testdata/voltha-event/events.proto
// (voltha-protos 5.6.9 on) and of events_568.proto (5.6.8, whose KpiEvent3
// metrics were uint64).
func volthaEvents(t testing.TB) (current, v568 protoreflect.MessageDescriptor) {
	return compileProto(t, "voltha-event", "events.proto", "event.Event"),
		compileProto(t, "voltha-event", "events_568.proto", "event568.Event")
}

// volthaGoldenInputs encodes every testdata/voltha-event/*.json (protojson
// text of an Event; *.v568.json with the 5.6.8 messages) as protobuf.
func volthaGoldenInputs(t testing.TB) map[string][]byte {
	current, v568 := volthaEvents(t)
	out := map[string][]byte{}
	for _, in := range goldenFiles(t, "voltha-event", ".json") {
		md := current
		if strings.HasSuffix(in, ".v568.json") {
			md = v568
		}
		out[in] = encodeJSONFile(t, md, in)
	}
	return out
}

func newVolthaDecoder(t testing.TB, set func(*decoders.VolthaEventConfig)) metric.Decoder {
	return newDecoder(t, "voltha-event", set)
}

// TestVolthaEventGolden decodes every title and context shape the openolt
// and openonu adapters send, old titles and new, KpiEvent3 with double
// and with uint64 values, the legacy KpiEvent, empty metadata, missing
// timestamps, NaN and infinities, and the events that are not KPIs; the
// events are encoded by protobuf's own library from protojson text, and
// the expected samples are in the .golden file beside each (-update
// rewrites them, for review).
func TestVolthaEventGolden(t *testing.T) {
	dec := newVolthaDecoder(t, nil)
	inputs := volthaGoldenInputs(t)
	for in, value := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			var out metric.Result
			err := dec.Decode(&metric.Message{Value: value, Timestamp: goldenReceiveTime}, &out)
			got := render(out, err)
			golden := strings.TrimSuffix(in, ".json") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, rerr := os.ReadFile(golden)
			require.NoError(t, rerr, "run with -update to create it, then review it")
			require.Equal(t, string(want), got)
			checkVolthaResult(t, out, err, true)
		})
	}
}

// checkVolthaResult holds a result to the decoder's promises; defaults
// says the decoder has the default identifiers, which are no samples.
func checkVolthaResult(t testing.TB, out metric.Result, err error, defaults bool) {
	t.Helper()
	if err != nil {
		require.Empty(t, out.Samples, "samples and a whole-message error")
		require.Empty(t, out.Rejected, "rejections and a whole-message error")
		if _, skipped := metric.SkipReason(err); !skipped {
			var re *metric.RejectError
			require.ErrorAs(t, err, &re)
			require.Less(t, len(re.Detail), 200, "detail is for a log line")
		}
	}
	for _, s := range out.Samples {
		require.True(t, metric.ValidPath(s.Path), "the decoder vouches for its paths: %q", s.Path)
		require.False(t, math.IsInf(s.Value, 0) || math.IsNaN(s.Value), "sample %+v", s)
		require.False(t, math.IsInf(s.Time, 0) || math.IsNaN(s.Time) || s.Time < 0, "sample %+v", s)
		for _, id := range []string{"interval_end_time", "Timestamp", "class_id", "intfId"} {
			require.False(t, defaults && strings.HasSuffix(s.Path, "."+id), "identifier %s is not a sample: %s", id, s.Path)
		}
	}
}

// Raw protobuf builders, from the field table, for what protobuf's own
// encoder never writes: explicit empty strings, map entries without a
// value, wrong wire types, broken bytes.
func pbBytes(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

func pbString(b []byte, num protowire.Number, s string) []byte { return pbBytes(b, num, []byte(s)) }

func pbDouble(b []byte, num protowire.Number, v float64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), math.Float64bits(v))
}

func pbFloatEntry(name string, v float32) []byte {
	e := pbString(nil, 1, name)
	return protowire.AppendFixed32(protowire.AppendTag(e, 2, protowire.Fixed32Type), math.Float32bits(v))
}

// pbKPI2 is an Event holding a KpiEvent2 with ts and one MetricInformation
// of metadata and metrics entries.
func pbKPI2(ts float64, metadata []byte, entries ...[]byte) []byte {
	var info []byte
	if metadata != nil {
		info = pbBytes(info, 1, metadata)
	}
	for _, e := range entries {
		info = pbBytes(info, 2, e)
	}
	kpi := pbDouble(nil, 2, ts)
	kpi = pbBytes(kpi, 3, info)
	return pbBytes(nil, 4, kpi)
}

func TestVolthaEventWire(t *testing.T) {
	meta := func(fields ...string) []byte { // title, device_id, then context key/value pairs
		m := pbString(nil, 1, fields[0])
		m = pbString(m, 5, fields[1])
		for i := 2; i+1 < len(fields); i += 2 {
			m = pbBytes(m, 6, pbString(pbString(nil, 1, fields[i]), 2, fields[i+1]))
		}
		return m
	}
	nni := meta("NNIStats", "olt1", "portlabel", "nni-1")
	manyContext := []string{"NNIStats", "olt1"}
	for i := range 12 {
		manyContext = append(manyContext, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	manyContext = append(manyContext, "portlabel", "nni-9")
	tests := []struct {
		name  string
		value []byte
		set   func(*decoders.VolthaEventConfig)
		want  string
	}{
		{
			name:  "explicit empty strings are left out, not empty segments",
			value: pbKPI2(1796230800, pbString(pbString(pbString(meta("PON_Optical", "onu1"), 4, ""), 3, ""), 7, ""), pbFloatEntry("receive_power_dBm", -19.4)),
			set:   func(c *decoders.VolthaEventConfig) { c.Path = "{logical_device_id?}.{serial_no?}.{uuid?}.x.{metric}" },
			want:  "voltha.onu1.PON_Optical.receive_power_dBm -19.4 1796230800\n",
		},
		{
			name:  "an empty required field rejects the entry's samples",
			value: pbKPI2(1796230800, meta("NNIStats", "", "portlabel", "nni-1"), pbFloatEntry("RxBytes", 1)),
			want:  "reject voltha.NNIStats.nni-1.RxBytes missing_field\n",
		},
		{
			name:  "a map entry without value is protobuf's zero",
			value: pbKPI2(1796230800, nni, pbString(nil, 1, "RxBytes")),
			want:  "voltha.olt1.NNIStats.nni-1.RxBytes 0 1796230800\n",
		},
		{
			name:  "a value of the wrong wire type is not a number",
			value: pbKPI2(1796230800, nni, pbString(pbString(nil, 1, "RxBytes"), 2, "12")),
			want:  "reject voltha.olt1.NNIStats.nni-1.RxBytes not_a_number\n",
		},
		{
			name:  "the last of duplicate context keys wins, past the first eight",
			value: pbKPI2(1796230800, meta(manyContext...), pbFloatEntry("RxBytes", 3)),
			want:  "voltha.olt1.NNIStats.nni-9.RxBytes 3 1796230800\n",
		},
		{
			name:  "titles compare case-insensitively (YAML folds keys)",
			value: pbKPI2(1796230800, meta("nnistats", "olt1", "portlabel", "nni-1"), pbFloatEntry("RxBytes", 3)),
			want:  "voltha.olt1.nnistats.nni-1.RxBytes 3 1796230800\n",
		},
		{
			name:  "metric names are sanitised",
			value: pbKPI2(1796230800, nni, pbFloatEntry("rx bytes", 1), pbFloatEntry("a.b", 2), pbFloatEntry("", 3)),
			want: "voltha.olt1.NNIStats.nni-1.rx_bytes 1 1796230800\n" +
				"voltha.olt1.NNIStats.nni-1.a.b 2 1796230800\n" +
				"reject voltha.olt1.NNIStats.nni-1 bad_path\n",
		},
		{
			name:  "emit_identifiers",
			value: pbKPI2(1796230800, meta("ONUStats", "olt1"), pbFloatEntry("intfId", 1), pbFloatEntry("onuId", 2), pbFloatEntry("RxBytes", 3)),
			set:   func(c *decoders.VolthaEventConfig) { c.EmitIdentifiers = true },
			want: "voltha.olt1.ONUStats.pon-1.onu-2.intfId 1 1796230800\n" +
				"voltha.olt1.ONUStats.pon-1.onu-2.onuId 2 1796230800\n" +
				"voltha.olt1.ONUStats.pon-1.onu-2.RxBytes 3 1796230800\n",
		},
		{
			name:  "identifiers replaced",
			value: pbKPI2(1796230800, meta("ONUStats", "olt1"), pbFloatEntry("intfId", 1), pbFloatEntry("onuId", 2), pbFloatEntry("RxBytes", 3)),
			set:   func(c *decoders.VolthaEventConfig) { c.Identifiers = []string{"onuId"} },
			want: "voltha.olt1.ONUStats.pon-1.onu-2.intfId 1 1796230800\n" +
				"voltha.olt1.ONUStats.pon-1.onu-2.RxBytes 3 1796230800\n",
		},
		{
			name:  "paths per title, and the fallback",
			value: pbKPI2(1796230800, nni, pbFloatEntry("RxBytes", 3)),
			set: func(c *decoders.VolthaEventConfig) {
				c.Paths = map[string]string{"nnistats": "olt.{device_id}.{context.portlabel}.{metric}.x"}
			},
			want: "olt.olt1.nni-1.RxBytes.x 3 1796230800\n",
		},
		{
			name:  "missing_timestamp receive_time",
			value: pbBytes(nil, 4, pbBytes(nil, 3, pbBytes(pbBytes(nil, 1, nni), 2, pbFloatEntry("RxBytes", 1)))),
			set:   func(c *decoders.VolthaEventConfig) { c.MissingTimestamp = decoders.MissingReceiveTime },
			want:  "voltha.olt1.NNIStats.nni-1.RxBytes 1 1700000000\n",
		},
		{
			name:  "a metadata ts that is not finite",
			value: pbKPI2(1796230800, pbDouble(nni, 2, math.NaN()), pbFloatEntry("RxBytes", 1)),
			want:  "reject voltha.olt1.NNIStats.nni-1.RxBytes bad_timestamp\n",
		},
		{
			name:  "unknown fields are passed over, as protobuf does",
			value: append(pbString(pbKPI2(1796230800, pbString(nni, 15, "new"), pbFloatEntry("RxBytes", 1)), 99, "x"), protowire.AppendVarint(protowire.AppendTag(nil, 100, protowire.VarintType), 7)...),
			want:  "voltha.olt1.NNIStats.nni-1.RxBytes 1 1796230800\n",
		},
		{
			name:  "non_kpi reject",
			value: pbBytes(nil, 5, pbString(nil, 1, "olt1")),
			set:   func(c *decoders.VolthaEventConfig) { c.NonKPI = decoders.NonKPIReject },
			want:  "error not_kpi: device_event\n",
		},
		{name: "an empty message is no event", value: []byte{}, want: "error skipped: no_event\n"},
		{name: "JSON is not protobuf", value: []byte(`{"type":"slice","ts":1,"data":{}}`), want: "error invalid_protobuf: event: unexpected EOF\n"},
		{name: "truncated", value: pbKPI2(1796230800, nni, pbFloatEntry("RxBytes", 1))[:20], want: "error invalid_protobuf: event: unexpected EOF\n"},
		{name: "field number 0", value: []byte{0x02, 0x00}, want: "error invalid_protobuf: event: invalid field number\n"},
		{
			name:  "broken metadata rejects the whole message",
			value: pbKPI2(1796230800, []byte{0x0a, 0x05, 'a'}, pbFloatEntry("RxBytes", 1)),
			want:  "error invalid_protobuf: metadata: unexpected EOF\n",
		},
		{
			name:  "too large",
			value: pbKPI2(1796230800, pbString(nni, 7, strings.Repeat("u", 2000)), pbFloatEntry("RxBytes", 1)),
			set:   func(c *decoders.VolthaEventConfig) { c.MaxMessageBytes = 1000 },
			want:  "error too_large: 2073 bytes, limit 1000\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec := newVolthaDecoder(t, tc.set)
			var out metric.Result
			err := dec.Decode(&metric.Message{Value: tc.value, Timestamp: goldenReceiveTime}, &out)
			require.Equal(t, tc.want, render(out, err))
			checkVolthaResult(t, out, err, tc.set == nil)
		})
	}
}

func TestVolthaEventConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		set  func(*decoders.VolthaEventConfig)
		want string
	}{
		{"interval_end_time in a path", func(c *decoders.VolthaEventConfig) {
			c.Paths["fec_history"] = "voltha.{device_id}.{metrics.interval_end_time}.{metric}"
		}, `paths.fec_history: "voltha.{device_id}.{metrics.interval_end_time}.{metric}": placeholder {metrics.interval_end_time}: interval_end_time changes every interval`},
		{"unknown field", func(c *decoders.VolthaEventConfig) { c.Path = "{device}.{metric}" },
			`path: "{device}.{metric}": placeholder {device}: unknown field "device"`},
		{"no metric", func(c *decoders.VolthaEventConfig) { c.Path = "{device_id}" }, "must contain {metric}"},
		{"non_kpi", func(c *decoders.VolthaEventConfig) { c.NonKPI = "drop" }, `non_kpi: must be "skip" or "reject", got "drop"`},
		{"missing_timestamp", func(c *decoders.VolthaEventConfig) { c.MissingTimestamp = "now" }, "missing_timestamp: "},
		{"empty identifier", func(c *decoders.VolthaEventConfig) { c.Identifiers = []string{""} }, "identifiers[0]: empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := decoders.Lookup("voltha-event")
			require.NoError(t, err)
			_, err = f(func(into any) error { tc.set(into.(*decoders.VolthaEventConfig)); return nil }, metric.Env{})
			require.ErrorContains(t, err, tc.want)
			require.True(t, strings.HasPrefix(err.Error(), "voltha-event: "), err.Error())
		})
	}
}

// TestShortestFloat32: a float32 is written as its shortest decimal, for
// every kind of float32: integers, fractions, the smallest and largest,
// subnormals.
func TestShortestFloat32(t *testing.T) {
	dec := newVolthaDecoder(t, nil)
	values := []float32{0, 1, -1, 24.54, -21.3, 0.1, 16777216, 16777217, 123456789, 3.4028235e38, -3.4028235e38,
		1.17549435e-38, 1e-45, 7e-45, 1e-10, 1e10, 0.30000001, 2.5e-7, 98765.43}
	for i := range 2000 { // and a spread of bit patterns
		values = append(values, math.Float32frombits(uint32(i)*2147483+12345))
	}
	for _, f := range values {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			continue
		}
		var out metric.Result
		require.NoError(t, dec.Decode(&metric.Message{Value: pbKPI2(1796230800, pbString(pbString(nil, 1, "t"), 5, "d"), pbFloatEntry("v", f))}, &out))
		require.Len(t, out.Samples, 1)
		want, err := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
		require.NoError(t, err)
		require.Equal(t, want, out.Samples[0].Value, "float32 %v", f)
	}
}

// FuzzVolthaEvent: whatever the bytes, the decoder does not panic, returns
// samples or a whole-message error (never both), vouches for its paths,
// writes only finite values and times, and stays within the output budget.
func FuzzVolthaEvent(f *testing.F) {
	for _, v := range volthaGoldenInputs(f) {
		f.Add(v)
	}
	f.Add(benchVolthaEvent(f))
	dec := newVolthaDecoder(f, nil)
	tagged := newVolthaDecoder(f, func(c *decoders.VolthaEventConfig) {
		c.Tags = map[string]string{"device_id": "{device_id}", "onu": "{context.onuID}",
			"entity": "{metrics.entity_id}", "direction": "{direction}", "src": "openonu"}
	})
	limits := metric.DefaultOutputLimits()
	f.Fuzz(func(t *testing.T, value []byte) {
		msg := &metric.Message{Value: value, Timestamp: goldenReceiveTime}
		out := metric.Result{Budget: limits.Budget(msg.Size())}
		err := dec.Decode(msg, &out)
		checkVolthaResult(t, out, err, true)
		require.LessOrEqual(t, out.Cost(), out.Budget, "output within the budget")
		checkBudget(t, dec, msg)
		checkBudget(t, tagged, msg)
	})
}

// benchVolthaEvent is what the openolt adapter sends for an NNI port every
// 150 s: one KpiEvent2 of ten counters.
func benchVolthaEvent(t testing.TB) []byte {
	current, _ := volthaEvents(t)
	text, err := os.ReadFile(filepath.Join("testdata", "voltha-event", "openolt-nni.json"))
	require.NoError(t, err)
	return encodeJSON(t, current, text)
}

func BenchmarkVolthaEvent(b *testing.B) {
	benchDecoder(b, newVolthaDecoder(b, nil), &metric.Message{Value: benchVolthaEvent(b)})
}

// emptyEntriesEvent is a KpiEvent2 of about 1 MB of empty
// MetricInformation entries, two bytes each.
func emptyEntriesEvent() []byte {
	var entries []byte
	for len(entries) < 1<<20-100 {
		entries = pbBytes(entries, 3, nil)
	}
	kpi := append(pbDouble(nil, 2, 1796230800), entries...)
	return pbBytes(nil, 4, kpi)
}

// TestVolthaEventEmptyEntries: an entry without metrics names nothing,
// so its path and tags are not rendered (or charged): 1 MB of empty
// entries is read, not rendered 500 000 times (BenchmarkVolthaEventEmptyEntries).
func TestVolthaEventEmptyEntries(t *testing.T) {
	dec := newVolthaDecoder(t, nil)
	msg := &metric.Message{Value: emptyEntriesEvent()}
	out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
	require.NoError(t, dec.Decode(msg, &out))
	require.Empty(t, out.Samples)
	require.Zero(t, out.Spent(), "nothing rendered, nothing charged")
}

func BenchmarkVolthaEventEmptyEntries(b *testing.B) {
	dec := newVolthaDecoder(b, nil)
	msg := &metric.Message{Value: emptyEntriesEvent()}
	b.SetBytes(int64(len(msg.Value)))
	b.ReportAllocs()
	for b.Loop() {
		out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
		_ = dec.Decode(msg, &out)
	}
}
