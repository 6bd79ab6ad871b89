package decoders_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

// onuStats is the json decoder config of the golden files: the same as
// configs/json-decoder.yaml's onu-stats.
func onuStats(c *decoders.JSONConfig) {
	c.Prefix = "voltha.onu"
	c.Path = "{device.id}.{port}.{metric}"
	c.Timestamp.Field = "collected_at"
	c.Timestamp.Unit = "ms"
	c.MetricsObject = "counters"
	c.Metrics = []string{"optics.rx_power_dbm"}
}

func TestJSONGolden(t *testing.T) {
	testGolden(t, newDecoder(t, "json", onuStats), "json", ".json")
}

func TestJSONConfigurations(t *testing.T) {
	tests := []struct {
		name string
		set  func(*decoders.JSONConfig)
		msg  string
		want string
	}{
		{
			name: "defaults: ts in seconds, path is the metric",
			set:  func(c *decoders.JSONConfig) { c.Metrics = []string{"a", "b.c"} },
			msg:  `{"ts":1480000000,"a":1,"b":{"c":2}}`,
			want: "a 1 1480000000\nb.c 2 1480000000\n",
		},
		{
			name: "rfc3339",
			set: func(c *decoders.JSONConfig) {
				c.Metrics, c.Timestamp = []string{"v"}, decoders.JSONTimestampConfig{Field: "at", Unit: "rfc3339", Missing: "reject"}
			},
			msg:  `{"at":"2024-01-02T03:04:05.5Z","v":1}`,
			want: "v 1 1704164645.5\n",
		},
		{
			name: "microseconds and nanoseconds",
			set: func(c *decoders.JSONConfig) {
				c.Metrics, c.Timestamp.Unit, c.Path = []string{"v"}, "ns", "{k}.{metric}"
			},
			msg:  `{"ts":1700000000123456789,"v":1,"k":"n"}`,
			want: "n.v 1 1700000000.1234567\n",
		},
		{
			name: "us",
			set: func(c *decoders.JSONConfig) {
				c.Metrics, c.Timestamp.Unit = []string{"v"}, "us"
			},
			msg:  `{"ts":1700000000500000,"v":1}`,
			want: "v 1 1700000000.5\n",
		},
		{
			name: "missing ts takes the receive time when configured",
			set: func(c *decoders.JSONConfig) {
				c.Metrics, c.Timestamp.Missing = []string{"v"}, "receive_time"
			},
			msg:  `{"v":1}`,
			want: "v 1 1700000000\n",
		},
		{
			name: "optional field, literal joins and metric in the middle",
			set: func(c *decoders.JSONConfig) {
				c.Metrics, c.Path = []string{"v"}, "{a}-{b?}.{c}.{metric}_total.x"
			},
			msg:  `{"ts":1,"v":1,"a":"x","c":7}`,
			want: "x-.7.v_total.x 1 1\n",
		},
		{
			name: "object and array fields expand to segments",
			set: func(c *decoders.JSONConfig) {
				c.Metrics, c.Path = []string{"v"}, "{ctx}.{list}.{metric}"
			},
			msg:  `{"ts":1,"v":1,"ctx":{"port":"1","onu":2,"deep":{"x":1}},"list":["a",true,null]}`,
			want: "1.2.a.true.v 1 1\n",
		},
		{
			name: "booleans and numeric strings refused when configured",
			set: func(c *decoders.JSONConfig) {
				c.Metrics, c.Values = []string{"a", "b"}, decoders.ValueConfig{}
			},
			msg:  `{"ts":1,"a":true,"b":"2"}`,
			want: "reject a not_a_number\nreject b not_a_number\n",
		},
		{
			name: "replacement and allowed set",
			set: func(c *decoders.JSONConfig) {
				c.Metrics, c.Path = []string{"v"}, "{n}.{metric}"
				c.Sanitize.Replacement, c.Sanitize.Allowed = "-", "-"
			},
			msg:  `{"ts":1,"v":1,"n":"a b_c:d"}`,
			want: "a-b-c-d.v 1 1\n",
		},
		{
			name: "more than 32 top-level members",
			set:  func(c *decoders.JSONConfig) { c.Metrics = []string{"m39"} },
			msg:  "{" + manyMembers(40) + `,"ts":1}`,
			want: "m39 39 1\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := newDecoder(t, "json", tt.set)
			var out metric.Result
			err := dec.Decode(&metric.Message{Value: []byte(tt.msg), Timestamp: goldenReceiveTime}, &out)
			require.Equal(t, tt.want, render(out, err))
		})
	}
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"m` + itoa(i) + `":` + itoa(i))
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestJSONConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		set  func(*decoders.JSONConfig)
		err  string
	}{
		{"no metrics", func(c *decoders.JSONConfig) {}, "json: metrics: name at least one field, or set metrics_object"},
		{"bad unit", func(c *decoders.JSONConfig) { c.Metrics = []string{"a"}; c.Timestamp.Unit = "h" },
			`json: timestamp.unit: must be one of s, ms, us, ns, rfc3339, got "h"`},
		{"bad missing", func(c *decoders.JSONConfig) { c.Metrics = []string{"a"}; c.Timestamp.Missing = "now" },
			`json: timestamp.missing: must be "reject" or "receive_time", got "now"`},
		{"path without metric", func(c *decoders.JSONConfig) { c.Metrics = []string{"a"}; c.Path = "{a}" },
			`json: path: "{a}": must contain {metric}`},
		{"bad field", func(c *decoders.JSONConfig) { c.Metrics = []string{"a..b"}; c.MetricsObject = "x." },
			"json: metrics[0]: \"a..b\" is not a dotted field path\nmetrics_object: \"x.\" is not a dotted field path"},
		{"field after metric", func(c *decoders.JSONConfig) { c.Metrics = []string{"a"}; c.Path = "{metric}.{a}" },
			`json: path: "{metric}.{a}": placeholder {a} after {metric}: only text may follow it`},
		{"bad depth", func(c *decoders.JSONConfig) { c.Metrics = []string{"a"}; c.MaxDepth = 0 },
			"json: max_depth must be between 1 and 10000, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			factory, err := decoders.Lookup("json")
			require.NoError(t, err)
			_, err = factory(func(into any) error { tt.set(into.(*decoders.JSONConfig)); return nil }, metric.Env{})
			require.EqualError(t, err, tt.err)
		})
	}
	factory, _ := decoders.Lookup("json")
	_, err := factory(func(any) error { return errors.New(`unknown key "metric"`) }, metric.Env{})
	require.EqualError(t, err, `json: config: unknown key "metric"`)
}

// FuzzJSON: for any input the json decoder never panics, rejects a whole
// message alone, and passes only safe paths and finite numbers; a message
// that is not valid JSON is always rejected.
func FuzzJSON(f *testing.F) {
	for _, in := range goldenFiles(f, "json", ".json") {
		f.Add(readFile(f, in))
	}
	f.Add([]byte(benchJSONMessage))
	dec := newDecoder(f, "json", onuStats)
	f.Fuzz(func(t *testing.T, value []byte) {
		var out metric.Result
		msg := &metric.Message{Value: value, Timestamp: goldenReceiveTime}
		err := dec.Decode(msg, &out)
		checkInvariants(t, out, err)
		checkBudget(t, dec, msg)
		if !json.Valid(value) || !utf8.Valid(value) {
			require.Error(t, err)
		}
	})
}

// benchJSONMessage is a typical message for the onu-stats config: 10 metrics.
const benchJSONMessage = `{"type":"onu_stats","device":{"id":"onu-17","serial":"ALPHe3d1cf57"},"port":"uni-1",` +
	`"collected_at":1700000000123,"counters":{"rx_bytes":123456789,"tx_bytes":98765432,"rx_packets":1234,` +
	`"tx_packets":5678,"rx_errors":0,"tx_errors":1,"rx_drops":2,"tx_drops":3,"link_up":true},"optics":{"rx_power_dbm":-21.5}}`

func BenchmarkJSON(b *testing.B) {
	benchDecoder(b, newDecoder(b, "json", onuStats), &metric.Message{Value: []byte(benchJSONMessage)})
}
