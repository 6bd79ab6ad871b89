package decoders_test

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

// kpiProto configures a protobuf decoder of testdata/protobuf/kpi.proto.
func kpiProto(set func(*decoders.ProtobufConfig)) func(*decoders.ProtobufConfig) {
	return func(c *decoders.ProtobufConfig) {
		c.Proto = "testdata/protobuf/kpi.proto"
		c.Message = "test.kpi.Kpi"
		c.Path = "{device}.{metric}"
		c.Timestamp.Field = "at"
		c.Timestamp.Unit = decoders.UnitTimestamp
		c.MetricsObject = []string{"values"}
		if set != nil {
			set(c)
		}
	}
}

func TestProtobuf(t *testing.T) {
	md := compileProto(t, "protobuf", "kpi.proto", "test.kpi.Kpi")
	tests := []struct {
		name string
		set  func(*decoders.ProtobufConfig)
		msg  string // protojson of a test.kpi.Kpi
		want string
	}{
		{
			name: "map of metrics, Timestamp",
			msg:  `{"device": "olt1", "at": "2026-12-02T17:00:00.250Z", "values": {"b": 2.5, "a": 1}}`,
			want: "olt1.a 1 1796230800.25\nolt1.b 2.5 1796230800.25\n",
		},
		{
			name: "repeated metrics; an unset optional value is missing, not 0",
			set:  func(c *decoders.ProtobufConfig) { c.MetricsObject = []string{"gauges"} },
			msg:  `{"device": "olt1", "at": "2026-12-02T17:00:00Z", "gauges": [{"name": "temp", "value": 41.5}, {"name": "fan"}, {"name": "zero", "value": 0}]}`,
			want: "olt1.temp 41.5 1796230800\nolt1.zero 0 1796230800\nreject olt1.fan missing_field\n",
		},
		{
			name: "a message of metrics: its numeric fields, set ones of those with presence",
			set:  func(c *decoders.ProtobufConfig) { c.MetricsObject = []string{"counters"} },
			msg:  `{"device": "olt1", "at": "2026-12-02T17:00:00Z", "counters": {"rx": 5, "note": "x"}}`,
			want: "olt1.rx 5 1796230800\nolt1.tx 0 1796230800\n",
		},
		{
			name: "metric fields, float as its shortest decimal, booleans, nested",
			set: func(c *decoders.ProtobufConfig) {
				c.MetricsObject = nil
				c.Metrics = []string{"ratio", "up", "port.number", "temperature", "counters.errors"}
			},
			msg: `{"device": "olt1", "at": "2026-12-02T17:00:00Z", "ratio": 24.54, "up": true, "port": {"number": 7}}`,
			want: "olt1.ratio 24.54 1796230800\nolt1.up 1 1796230800\nolt1.port.number 7 1796230800\n" +
				"reject olt1.temperature missing_field\nreject olt1.counters.errors missing_field\n",
		},
		{
			name: "path: enum names, map keys, alternatives, optional fields, prefix",
			set: func(c *decoders.ProtobufConfig) {
				c.Prefix = "pon"
				c.Path = "{role}.{device}.{labels.rack?}.{labels.zone?}.{alt|port.name}.{port.number}.{metric}"
			},
			msg:  `{"device": "olt.1", "role": "ONU", "labels": {"rack": "r4"}, "port": {"name": "uni 1"}, "at": "2026-12-02T17:00:00Z", "values": {"x": 1}}`,
			want: "pon.ONU.olt_1.r4.uni_1.0.x 1 1796230800\n",
		},
		{
			name: "tags: scalar fields, enum names, map keys, alternatives; a missing one left out",
			set: func(c *decoders.ProtobufConfig) {
				c.Path = "kpi.{metric}"
				c.Tags = map[string]string{"device": "{device}", "role": "{role}", "rack": "{labels.rack}", "zone": "{labels.zone}",
					"port": "{alt|port.name}", "src": "protobuf"}
			},
			msg:  `{"device": "olt.1", "role": "ONU", "labels": {"rack": "r4"}, "port": {"name": "uni 1"}, "at": "2026-12-02T17:00:00Z", "values": {"x": 1}}`,
			want: "kpi.x;device=olt.1;port=uni_1;rack=r4;role=ONU;src=protobuf 1 1796230800\nrepair kpi;device=olt.1;port=uni_1;rack=r4;role=ONU;src=protobuf tag_repaired\n",
		},
		{
			name: "timestamps: integer milliseconds",
			set: func(c *decoders.ProtobufConfig) {
				c.Timestamp = decoders.JSONTimestampConfig{Field: "at_ms", Unit: "ms", Missing: "reject"}
			},
			msg:  `{"device": "d", "at_ms": "1796230800250", "values": {"x": 1}}`,
			want: "d.x 1 1796230800.25\n",
		},
		{
			name: "timestamps: RFC 3339 text",
			set: func(c *decoders.ProtobufConfig) {
				c.Timestamp = decoders.JSONTimestampConfig{Field: "at_text", Unit: "rfc3339", Missing: "reject"}
			},
			msg:  `{"device": "d", "at_text": "2026-12-02T17:00:00Z", "values": {"x": 1}}`,
			want: "d.x 1 1796230800\n",
		},
		{
			name: "timestamps: missing",
			msg:  `{"device": "d", "values": {"x": 1}}`,
			want: "error bad_timestamp: no at\n",
		},
		{
			name: "timestamps: missing, receive_time",
			set:  func(c *decoders.ProtobufConfig) { c.Timestamp.Missing = decoders.MissingReceiveTime },
			msg:  `{"device": "d", "values": {"x": 1}}`,
			want: "d.x 1 1700000000\n",
		},
		{
			name: "NaN and infinities are not finite",
			msg:  `{"device": "d", "at": "2026-12-02T17:00:00Z", "values": {"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": -0.5}}`,
			want: "d.d -0.5 1796230800\nreject d.a not_finite\nreject d.b not_finite\nreject d.c not_finite\n",
		},
		{
			name: "a required path field missing rejects the message",
			msg:  `{"at": "2026-12-02T17:00:00Z", "values": {"x": 1}}`,
			want: "error missing_field: no value for {device}\n",
		},
		{
			name: "booleans refused",
			set: func(c *decoders.ProtobufConfig) {
				c.MetricsObject, c.Metrics, c.Values.Booleans = nil, []string{"up"}, false
			},
			msg:  `{"device": "d", "at": "2026-12-02T17:00:00Z", "up": true}`,
			want: "reject d.up not_a_number\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec := newDecoder(t, "protobuf", kpiProto(tc.set))
			var out metric.Result
			err := dec.Decode(&metric.Message{Value: encodeJSON(t, md, []byte(tc.msg)), Timestamp: goldenReceiveTime}, &out)
			require.Equal(t, tc.want, render(out, err))
			checkInvariants(t, out, err)
		})
	}

	dec := newDecoder(t, "protobuf", kpiProto(nil))
	var out metric.Result
	err := dec.Decode(&metric.Message{Value: []byte(`{"device":"d"}`)}, &out)
	require.EqualError(t, err, "invalid_protobuf: test.kpi.Kpi: cannot parse invalid wire-format data")
}

// TestProtobufConfigErrors: a mistake in the .proto, or a field the YAML
// names wrongly, stops start-up with the key and the line of the .proto.
func TestProtobufConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		set  func(*decoders.ProtobufConfig)
		want string
	}{
		{"no such file", func(c *decoders.ProtobufConfig) { c.Proto = "testdata/protobuf/nope.proto" },
			`proto: testdata/protobuf/nope.proto: open testdata/protobuf/nope.proto: no such file or directory`},
		{"no such message", func(c *decoders.ProtobufConfig) { c.Message = "test.kpi.Kpis" },
			`message: testdata/protobuf/kpi.proto declares no message "test.kpi.Kpis" (it declares test.kpi.Port, test.kpi.Gauge, test.kpi.Counters, test.kpi.Kpi)`},
		{"no such field", func(c *decoders.ProtobufConfig) { c.Path = "{port.nmae}.{metric}" },
			`path: placeholder {port.nmae}: port.nmae: no field "nmae" in test.kpi.Port (kpi.proto:14)`},
		{"a message as a segment", func(c *decoders.ProtobufConfig) { c.Path = "{port}.{metric}" },
			`path: placeholder {port}: port: port (kpi.proto:34) is a message test.kpi.Port: name one of its fields`},
		{"a repeated field as a segment", func(c *decoders.ProtobufConfig) { c.Path = "{tags}.{metric}" },
			`path: placeholder {tags}: tags: tags (kpi.proto:47) is repeated: a path needs one value`},
		{"a map without its key", func(c *decoders.ProtobufConfig) { c.Path = "{labels}.{metric}" },
			`path: placeholder {labels}: labels: labels (kpi.proto:35) is a map: name its key, as labels.<key>`},
		{"a map with int keys", func(c *decoders.ProtobufConfig) { c.Path = "{by_number.1}.{metric}" },
			`path: placeholder {by_number.1}: by_number.1: by_number (kpi.proto:48) is a map with int32 keys: only string keys can be named`},
		{"bytes in a path", func(c *decoders.ProtobufConfig) { c.Path = "{blob}.{metric}" },
			`path: placeholder {blob}: blob: blob (kpi.proto:46) is bytes, which a path cannot hold`},
		{"a string metric", func(c *decoders.ProtobufConfig) { c.Metrics = []string{"device"} },
			`metrics[0]: device: device (kpi.proto:32) is a string, not a number`},
		{"a timestamp of the wrong unit", func(c *decoders.ProtobufConfig) { c.Timestamp.Field = "at_ms" },
			`timestamp.unit: at_ms (kpi.proto:37) is a number: want s, ms, us or ns, got "timestamp"`},
		{"a boolean timestamp", func(c *decoders.ProtobufConfig) { c.Timestamp.Field = "up" },
			`timestamp.field: up: up (kpi.proto:44) is a bool: want a number, a string or a google.protobuf.Timestamp`},
		{"a map of strings as metrics", func(c *decoders.ProtobufConfig) { c.MetricsObject = []string{"labels"} },
			`metrics_object[0]: labels (kpi.proto:35) is a map<string, string>: want map<string, number>`},
		{"a repeated message without a value field", func(c *decoders.ProtobufConfig) {
			c.MetricsObject, c.MetricValue = []string{"gauges"}, "reading"
		}, `metrics_object[0]: gauges (kpi.proto:40) is a repeated test.kpi.Gauge, which has no numeric field "reading" for the metric's value (metric_value)`},
		{"no metrics", func(c *decoders.ProtobufConfig) { c.MetricsObject = nil }, "metrics or metrics_object must be set"},
		{"no message", func(c *decoders.ProtobufConfig) { c.Message = "" }, "message: must name the message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := decoders.Lookup("protobuf")
			require.NoError(t, err)
			_, err = f(func(into any) error { kpiProto(tc.set)(into.(*decoders.ProtobufConfig)); return nil }, metric.Env{})
			require.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("a syntax error names the line", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, writeFile(dir+"/bad.proto", "syntax = \"proto3\";\npackage x;\nmessage M {\n  double v = 1\n}\n"))
		f, _ := decoders.Lookup("protobuf")
		_, err := f(func(into any) error {
			c := into.(*decoders.ProtobufConfig)
			c.Proto, c.Message, c.Metrics = dir+"/bad.proto", "x.M", []string{"v"}
			return nil
		}, metric.Env{})
		require.ErrorContains(t, err, "bad.proto:5:1: syntax error: expecting ';'")
	})
}

// FuzzProtobuf: whatever the bytes, the decoder does not panic, returns
// samples or a whole-message error, vouches for its paths and stays
// within the output budget, in what it returns and in what it allocates.
func FuzzProtobuf(f *testing.F) {
	md := compileProto(f, "protobuf", "kpi.proto", "test.kpi.Kpi")
	f.Add(encodeJSON(f, md, []byte(`{"device": "olt1", "role": "OLT", "labels": {"rack": "r4"}, "port": {"name": "p", "number": 3},
		"at": "2026-12-02T17:00:00.250Z", "gauges": [{"name": "temp", "value": 41.5}, {"name": "fan"}],
		"values": {"a": 1, "b": "NaN"}, "counters": {"rx": 5, "errors": 2}, "ratio": 0.1, "up": true}`)))
	f.Add([]byte{})
	dec := newDecoder(f, "protobuf", kpiProto(func(c *decoders.ProtobufConfig) {
		c.Path = "{role}.{device}.{labels.rack?}.{port.name|alt}.{metric}"
		c.MetricsObject = []string{"values", "gauges", "counters"}
		c.Metrics = []string{"ratio", "up", "temperature"}
		c.Timestamp.Missing = decoders.MissingReceiveTime
		c.Tags = map[string]string{"zone": "{labels.zone}", "role": "{role}", "port": "{alt|port.name}"}
	}))
	limits := metric.DefaultOutputLimits()
	f.Fuzz(func(t *testing.T, value []byte) {
		msg := &metric.Message{Value: value, Timestamp: goldenReceiveTime}
		out := metric.Result{Budget: limits.Budget(msg.Size())}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := dec.Decode(msg, &out)
		runtime.ReadMemStats(&after)
		checkInvariants(t, out, err)
		require.LessOrEqual(t, out.Cost(), out.Budget, "output within the budget")
		// And so is what dynamicpb holds on the way (protoParseCost):
		// the parse and the samples, each within the budget, with their
		// slices' growth.
		allocated := after.TotalAlloc - before.TotalAlloc
		require.LessOrEqual(t, allocated, uint64((2*decoders.ProtoParseBudgets+2)*out.Budget), "allocated %d bytes for %d", allocated, len(value))
		parse := decoders.ProtoParseCost(value, md, math.MaxInt)
		checkBudgetAbove(t, dec, msg, (parse+decoders.ProtoParseBudgets-1)/decoders.ProtoParseBudgets)
	})
}

func writeFile(name, text string) error { return os.WriteFile(name, []byte(text), 0o644) }

// protobufShapes are test.kpi.Kpi messages of n elements each: real
// gauges ({name, value}, as protojson would write them) and hostile
// shapes that cost dynamicpb far more than their size (empty elements,
// empty strings, distinct map keys, unknown fields).
func protobufShapes(t testing.TB, n int) map[string][]byte {
	md := compileProto(t, "protobuf", "kpi.proto", "test.kpi.Kpi")
	var js strings.Builder
	js.WriteString(`{"device":"olt1","at":"2026-12-02T17:00:00Z","gauges":[`)
	for i := range min(n, 40_000) { // 1 MB of them: protojson is slow
		if i > 0 {
			js.WriteByte(',')
		}
		fmt.Fprintf(&js, `{"name":"temperature%d","value":%d.5}`, i, i)
	}
	js.WriteString(`]}`)
	shapes := map[string][]byte{"real gauges": encodeJSON(t, md, []byte(js.String()))}
	js.Reset()
	js.WriteString(`{"device":"olt1","at":"2026-12-02T17:00:00Z","gauges":[`)
	for i := range min(n, 60_000) {
		if i > 0 {
			js.WriteByte(',')
		}
		fmt.Fprintf(&js, `{"name":"%c%c","value":%d.5}`, 'a'+i%26, 'a'+i/26%26, i%10)
	}
	js.WriteString(`]}`)
	shapes["short-named gauges"] = encodeJSON(t, md, []byte(js.String()))
	var empty, strs, unknown, mapKeys, merged []byte
	for i := range n {
		empty = protowire.AppendBytes(protowire.AppendTag(empty, 9, protowire.BytesType), nil)
		strs = protowire.AppendBytes(protowire.AppendTag(strs, 16, protowire.BytesType), nil)
		unknown = protowire.AppendVarint(protowire.AppendTag(unknown, 999, protowire.VarintType), 0)
		entry := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(i))
		mapKeys = protowire.AppendBytes(protowire.AppendTag(mapKeys, 17, protowire.BytesType), entry)
		merged = protowire.AppendBytes(protowire.AppendTag(merged, 3, protowire.BytesType), nil)
	}
	shapes["empty gauges"], shapes["empty strings"], shapes["unknown fields"] = empty, strs, unknown
	shapes["distinct map keys"], shapes["one message merged"] = mapKeys, merged
	var codes []byte
	for i := range n {
		codes = protowire.AppendVarint(codes, uint64(i%100))
	}
	shapes["packed varints"] = protowire.AppendBytes(protowire.AppendTag(nil, 19, protowire.BytesType), codes)
	return shapes
}

// TestProtobufParseCostModel: protoParseCost is within a small factor of
// what dynamicpb really holds (live, after a GC) for every shape, and a
// real message of 10 000 gauges is within the default output budget, so
// that holding the parse to the budget refuses no real message.
func TestProtobufParseCostModel(t *testing.T) {
	md := compileProto(t, "protobuf", "kpi.proto", "test.kpi.Kpi")
	for name, b := range protobufShapes(t, 10_000) {
		t.Run(name, func(t *testing.T) {
			held := make([]*dynamicpb.Message, 10)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.GC() // and the pools' victims: freed while measuring, they would hide what is held
			runtime.ReadMemStats(&before)
			for i := range held {
				held[i] = dynamicpb.NewMessage(md)
				require.NoError(t, proto.Unmarshal(b, held[i]))
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			live := max(0, float64(after.HeapAlloc)-float64(before.HeapAlloc)) / float64(len(held))
			runtime.KeepAlive(held)
			model := float64(decoders.ProtoParseCost(b, md, math.MaxInt))
			t.Logf("%d bytes: dynamicpb holds %.0f (%.1fx), modelled %.0f", len(b), live, live/float64(len(b)), model)
			require.GreaterOrEqual(t, model, live/2, "the model may not undercharge")
			switch name {
			case "one message merged": // charged for the time merging takes, holding nothing
			case "empty strings": // a list element is charged twice, for its list's growth
				require.LessOrEqual(t, model, 4*live)
			default:
				require.LessOrEqual(t, model, 2*live)
			}
			if name == "real gauges" || name == "short-named gauges" {
				require.Less(t, model, float64(decoders.ProtoParseBudgets*metric.DefaultOutputLimits().Budget(len(b))), "a real message fits its budget")
			}
		})
	}
}

// TestProtobufParseBudget: a message whose parse would hold more than
// its output budget is rejected whole as output_budget before dynamicpb
// builds it: decoding it allocates next to nothing.
func TestProtobufParseBudget(t *testing.T) {
	dec := newDecoder(t, "protobuf", kpiProto(func(c *decoders.ProtobufConfig) {
		c.MetricsObject = []string{"values", "gauges"}
	}))
	for name, b := range protobufShapes(t, 400_000) {
		if len(b) > 1<<20 {
			b = b[:protoCut(b, 1<<20)]
		}
		t.Run(name, func(t *testing.T) {
			msg := &metric.Message{Value: b}
			out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := dec.Decode(msg, &out)
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes: %v, %d allocated", len(b), err, allocated)
			switch name {
			case "empty gauges", "one message merged": // 100 times their size and more
				require.Equal(t, metric.ReasonOverBudget, metric.ReasonOf(err), "err: %v", err)
				require.Less(t, allocated, uint64(64<<10), "rejected before it is built")
			default: // within the parse's budgets: its parse, then its samples
				require.NotEqual(t, metric.ReasonOverBudget, metric.ReasonOf(err))
				// dynamicpb's long lists grow by append's quarter: on the
				// way they allocate up to five times what they hold.
				require.Less(t, allocated, uint64((3*decoders.ProtoParseBudgets+2)*out.Budget), "allocated %d for %d bytes", allocated, len(b))
			}
		})
	}
}

// protoCut is the length of the fields of b that fit in max bytes.
func protoCut(b []byte, max int) int {
	n := 0
	for n < len(b) {
		_, typ, k := protowire.ConsumeTag(b[n:])
		m := protowire.ConsumeFieldValue(0, typ, b[n+k:])
		if k < 0 || m < 0 || n+k+m > max {
			break
		}
		n += k + m
	}
	return n
}

// BenchmarkProtobufHostile decodes 1 MB of empty repeated-message
// elements: 1.4 s and 190 MB allocated before the parse was held to the
// output budget.
func BenchmarkProtobufHostile(b *testing.B) {
	dec := newDecoder(b, "protobuf", kpiProto(func(c *decoders.ProtobufConfig) { c.MetricsObject = []string{"gauges"} }))
	v := protobufShapes(b, 500_000)["empty gauges"]
	msg := &metric.Message{Value: v[:protoCut(v, 1<<20)]}
	b.SetBytes(int64(len(msg.Value)))
	b.ReportAllocs()
	for b.Loop() {
		out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
		_ = dec.Decode(msg, &out)
	}
}

// BenchmarkProtobuf decodes a message of ten metrics (a map of ten
// counters), for comparison with the voltha-event and JSON decoders.
func BenchmarkProtobuf(b *testing.B) {
	md := compileProto(b, "protobuf", "kpi.proto", "test.kpi.Kpi")
	msg := encodeJSON(b, md, []byte(`{"device": "a4a1e6a2-0f4c-4cbb-9a3e-6b4d4b1f2c10", "port": {"name": "nni-1048576"},
		"at": "2026-12-02T17:00:00Z", "values": {"RxBytes": 123456, "RxPackets": 1024, "RxUcastPackets": 1000,
		"RxMcastPackets": 16, "RxBcastPackets": 8, "TxBytes": 654321, "TxPackets": 2048, "TxUcastPackets": 2000,
		"TxMcastPackets": 40, "TxBcastPackets": 8}}`))
	dec := newDecoder(b, "protobuf", kpiProto(func(c *decoders.ProtobufConfig) {
		c.Path = "voltha.{device}.NNIStats.{port.name}.{metric}"
	}))
	benchDecoder(b, dec, &metric.Message{Value: msg})
}

// TestProtobufParseNotKept: once a message is decoded, its parse is let
// go: the decoder's pooled message does not keep it (14 MB for 1 MB of
// distinct map keys, within the budget) until the next message.
func TestProtobufParseNotKept(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the pool hands the same message back
	dec := newDecoder(t, "protobuf", kpiProto(nil))
	big := protobufShapes(t, 400_000)["distinct map keys"]
	big = big[:protoCut(big, 1<<20)]
	small := protobufShapes(t, 1)["real gauges"]
	decode := func(v []byte) {
		msg := &metric.Message{Value: v}
		out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
		_ = dec.Decode(msg, &out)
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	decode(small)
	before := heap()
	decode(big)
	after := heap() // no message since: before, the pooled message held the parse until the next
	t.Logf("heap %d before, %d after", before, after)
	require.Less(t, int64(after)-int64(before), int64(2<<20), "the parse is not kept")
}

// BenchmarkProtoParseCost is the walk the protobuf decoder makes before
// parsing, on BenchmarkProtobuf's message: a small part of its time.
func BenchmarkProtoParseCost(b *testing.B) {
	md := compileProto(b, "protobuf", "kpi.proto", "test.kpi.Kpi")
	msg := protobufShapes(b, 10)["real gauges"]
	cost := decoders.ProtoParseCoster(md)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if cost(msg, math.MaxInt) == 0 {
			b.Fatal("no cost")
		}
	}
}

// TestProtobufParseCostShapes: the walk resolves a recursive message and
// walks groups, nested messages and map values, within a small factor of
// what dynamicpb holds, however deep (protobuf's limit is 10 000).
func TestProtobufParseCostShapes(t *testing.T) {
	md := compileProto(t, "protobuf", "tree.proto", "test.tree.Node")
	cost := decoders.ProtoParseCoster(md)
	// A chain of children 5 000 deep; a list of groups each holding a
	// node; a map of nodes.
	var chain []byte
	for range 5000 {
		chain = protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), chain)
	}
	var groups []byte
	for range 5000 {
		groups = protowire.AppendTag(groups, 3, protowire.StartGroupType)
		groups = protowire.AppendVarint(protowire.AppendTag(groups, 4, protowire.VarintType), 1)
		groups = protowire.AppendBytes(protowire.AppendTag(groups, 5, protowire.BytesType), nil)
		groups = protowire.AppendTag(groups, 3, protowire.EndGroupType)
	}
	var named []byte
	for i := range 5000 {
		entry := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), strconv.Itoa(i))
		entry = protowire.AppendBytes(protowire.AppendTag(entry, 2, protowire.BytesType), nil)
		named = protowire.AppendBytes(protowire.AppendTag(named, 7, protowire.BytesType), entry)
	}
	for name, b := range map[string][]byte{"chain": chain, "groups": groups, "named": named} {
		t.Run(name, func(t *testing.T) {
			held := make([]*dynamicpb.Message, 5)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range held {
				held[i] = dynamicpb.NewMessage(md)
				require.NoError(t, proto.Unmarshal(b, held[i]))
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			live := max(0, float64(after.HeapAlloc)-float64(before.HeapAlloc)) / float64(len(held))
			runtime.KeepAlive(held)
			model := float64(cost(b, math.MaxInt))
			t.Logf("%d bytes: dynamicpb holds %.0f (%.1fx), modelled %.0f", len(b), live, live/float64(len(b)), model)
			require.GreaterOrEqual(t, model, live/2)
			require.LessOrEqual(t, model, 2*live)
			require.Less(t, cost(b, 1000), 2000, "the walk stops past its limit")
		})
	}
}
