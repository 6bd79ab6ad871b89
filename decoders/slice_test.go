package decoders_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/jsonscan/jsonref"
	"github.com/shovel-metrics/shovel/router/metric"
)

var update = flag.Bool("update", false, "rewrite testdata/slice/*.golden from the decoder's output")

// newSliceDecoder builds the decoder the way the router does: through the
// registry, with set standing in for the YAML sub-tree.
func newSliceDecoder(t testing.TB, set func(*decoders.SliceConfig)) metric.Decoder {
	t.Helper()
	factory, err := decoders.Lookup("slice")
	require.NoError(t, err)
	dec, err := factory(func(into any) error {
		if set != nil {
			set(into.(*decoders.SliceConfig))
		}
		return nil
	}, metric.Env{Name: "test"})
	require.NoError(t, err)
	return dec
}

// render writes a Decode result the way the golden files hold it: samples
// as "path value ts", then "reject path reason", or "error <error>". A path
// that holds anything but printable non-space characters is quoted, so a
// golden file shows exactly what the decoder produced.
func render(out metric.Result, err error) string {
	var b strings.Builder
	for _, s := range out.Samples {
		fmt.Fprintf(&b, "%s %s %s\n", renderPath(s.Path),
			strconv.FormatFloat(s.Value, 'f', -1, 64), strconv.FormatFloat(s.Time, 'f', -1, 64))
	}
	for _, r := range out.Rejected {
		fmt.Fprintf(&b, "reject %s %s\n", renderPath(r.Path), r.Reason)
	}
	for _, r := range out.Repaired {
		fmt.Fprintf(&b, "repair %s %s\n", renderPath(r.Path), r.Reason)
	}
	if err != nil {
		fmt.Fprintf(&b, "error %v\n", err)
	}
	return b.String()
}

func renderPath(p string) string {
	plain := p != "" && !strings.ContainsFunc(p, func(r rune) bool {
		return r == '"' || r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsGraphic(r)
	})
	if plain {
		return p
	}
	return strconv.Quote(p)
}

func TestSliceGolden(t *testing.T) {
	testGolden(t, newSliceDecoder(t, nil), "slice", ".json")
}

func TestSliceLimits(t *testing.T) {
	deep := func(n int) string {
		return `{"ts":1,"data":{"a":{"b":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}}}`
	}
	tests := []struct {
		name   string
		set    func(*decoders.SliceConfig)
		msg    string
		reason string // "" for success
		want   string // rendered result when reason is ""
	}{
		{
			name:   "huge message",
			msg:    `{"ts":1,"data":{"a":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}}`,
			reason: metric.ReasonTooLarge,
		},
		{
			name:   "size checked before parsing",
			msg:    strings.Repeat("[", 1<<20+1),
			reason: metric.ReasonTooLarge,
		},
		{
			name: "at the size limit",
			set:  func(c *decoders.SliceConfig) { c.MaxMessageBytes = len(`{"ts":1,"data":{"a":{"b":2}}}`) },
			msg:  `{"ts":1,"data":{"a":{"b":2}}}`,
			want: "a.b 2 1\n",
		},
		{
			name:   "one byte over the size limit",
			set:    func(c *decoders.SliceConfig) { c.MaxMessageBytes = len(`{"ts":1,"data":{"a":{"b":2}}}`) - 1 },
			msg:    `{"ts":1,"data":{"a":{"b":2}}}`,
			reason: metric.ReasonTooLarge,
		},
		{
			name:   "10 000-deep nesting",
			msg:    deep(10_000),
			reason: decoders.ReasonTooDeep,
		},
		{
			name:   "10 000-deep unterminated nesting",
			msg:    `{"ts":1,"data":` + strings.Repeat(`{"a":`, 10_000),
			reason: decoders.ReasonTooDeep,
		},
		{
			name: "deepest value the default allows",
			msg:  deep(32 - 3), // the message, data and the object path are 3 levels
			want: "reject a.b not_a_number\n",
		},
		{
			name:   "one level too deep",
			msg:    deep(32 - 2),
			reason: decoders.ReasonTooDeep,
		},
		{
			name: "smallest max_depth decodes the data shape",
			set:  func(c *decoders.SliceConfig) { c.MaxDepth = 3 },
			msg:  `{"ts":1,"data":{"a":{"b":2}}}`,
			want: "a.b 2 1\n",
		},
		{
			name:   "too deep beats other faults",
			set:    func(c *decoders.SliceConfig) { c.MaxDepth = 3 },
			msg:    `{"ts":"x","data":{"a":{"b":[2]}}}`,
			reason: decoders.ReasonTooDeep,
		},
		{
			name:   "empty message",
			msg:    ``,
			reason: metric.ReasonInvalidJSON,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := newSliceDecoder(t, tt.set)
			var out metric.Result
			err := dec.Decode(&metric.Message{Value: []byte(tt.msg)}, &out)
			if tt.reason == "" {
				require.NoError(t, err)
				require.Equal(t, tt.want, render(out, nil))
				return
			}
			require.Equal(t, tt.reason, metric.ReasonOf(err), "err: %v", err)
			require.Empty(t, out.Samples)
			require.Empty(t, out.Rejected)
		})
	}
}

// The router reuses one Result per worker: a decoder appends, and a message
// rejected half-way through leaves what was there before untouched.
func TestSliceAppendsAndRollsBack(t *testing.T) {
	dec := newSliceDecoder(t, nil)
	earlier := metric.Sample{Path: "earlier.sample", Time: 1, Value: 1}
	out := metric.Result{
		Samples:  []metric.Sample{earlier},
		Rejected: []metric.Rejection{{Path: "earlier.reject", Reason: "x"}},
	}
	before := render(out, nil)

	err := dec.Decode(&metric.Message{Value: []byte(`{"ts":5,"data":{"a":{"b":1,"c":"x"},"d":7}}`)}, &out)
	require.Equal(t, metric.ReasonBadShape, metric.ReasonOf(err))
	require.Equal(t, before, render(out, nil))

	require.NoError(t, dec.Decode(&metric.Message{Value: []byte(`{"ts":5,"data":{"a":{"b":1,"c":"x"}}}`)}, &out))
	require.Equal(t, []metric.Sample{earlier, {Path: "a.b", Time: 5, Value: 1}}, out.Samples)
	require.Equal(t, []metric.Rejection{{Path: "earlier.reject", Reason: "x"}, {Path: "a.c", Reason: metric.ReasonNotANumber}}, out.Rejected)
}

func TestSliceConfig(t *testing.T) {
	require.Equal(t, decoders.SliceConfig{
		MaxMessageBytes: 1 << 20, MaxDepth: 32, MissingTimestamp: "reject",
		SliceDataPath: "voltha.{device_id}.{title}.{context?}.{metric}",
		Values:        decoders.ValueConfig{NumericStrings: true, Booleans: true},
		Sanitize:      decoders.PathConfig{Replacement: "_", Allowed: "-_:#@%+=~", UTF8: true, MaxLength: metric.MaxPathLen},
	}, decoders.DefaultSliceConfig())
	require.NoError(t, decoders.DefaultSliceConfig().Validate())

	tests := []struct {
		name string
		set  func(*decoders.SliceConfig)
		err  string
	}{
		{"zero max_message_bytes", func(c *decoders.SliceConfig) { c.MaxMessageBytes = 0 }, "slice: max_message_bytes must be positive, got 0"},
		{"negative max_message_bytes", func(c *decoders.SliceConfig) { c.MaxMessageBytes = -1 }, "slice: max_message_bytes must be positive, got -1"},
		{"max_depth too small", func(c *decoders.SliceConfig) { c.MaxDepth = 2 }, "slice: max_depth must be between 3 and 10000, got 2"},
		{"max_depth too large", func(c *decoders.SliceConfig) { c.MaxDepth = 10001 }, "slice: max_depth must be between 3 and 10000, got 10001"},
		{"missing_timestamp", func(c *decoders.SliceConfig) { c.MissingTimestamp = "now" }, `slice: missing_timestamp: must be "reject" or "receive_time", got "now"`},
		{"slice_data_path without metric", func(c *decoders.SliceConfig) { c.SliceDataPath = "a.{b}" }, `slice: slice_data_path: "a.{b}": must contain {metric}`},
		{"slice_data_path unclosed", func(c *decoders.SliceConfig) { c.SliceDataPath = "a.{b.{metric}" }, `slice: slice_data_path: "a.{b.{metric}": bad placeholder {b.{metric}: want {field}, {field.subfield} or {field?}`},
		{"sanitize.replacement", func(c *decoders.SliceConfig) { c.Sanitize.Replacement = " " }, `slice: sanitize.replacement: " " must be empty or one letter, digit or character of sanitize.allowed`},
		{"sanitize.allowed", func(c *decoders.SliceConfig) { c.Sanitize.Allowed = "-." }, `slice: sanitize.allowed: "-." may hold only ASCII punctuation other than the dot and ';' (which starts Graphite tags)`},
		{"sanitize.max_length", func(c *decoders.SliceConfig) { c.Sanitize.MaxLength = 0 }, `slice: sanitize.max_length must be between 1 and 4096, got 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			factory, err := decoders.Lookup("slice")
			require.NoError(t, err)
			_, err = factory(func(into any) error { tt.set(into.(*decoders.SliceConfig)); return nil }, metric.Env{})
			require.EqualError(t, err, tt.err)
		})
	}

	t.Run("decode error is wrapped", func(t *testing.T) {
		factory, err := decoders.Lookup("slice")
		require.NoError(t, err)
		_, err = factory(func(any) error { return errors.New(`unknown key "max_bytes"`) }, metric.Env{})
		require.EqualError(t, err, `slice: config: unknown key "max_bytes"`)
	})
	t.Run("registered with a description", func(t *testing.T) {
		require.Contains(t, decoders.Names(), "slice")
		require.NotEmpty(t, decoders.Description("slice"))
	})
}

// One decoder serves every worker: run it from several goroutines (most
// useful under -race) and check that none sees another's data.
func TestSliceConcurrent(t *testing.T) {
	dec := newSliceDecoder(t, nil)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			var out metric.Result
			for i := range 200 {
				out.Reset()
				key := fmt.Sprintf("w%d\\u002ei%d", w, i) // escaped keys use per-call scratch
				msg := fmt.Sprintf(`{"ts":%d,"data":{"%s":{"m":%d}}}`, i, key, w)
				if err := dec.Decode(&metric.Message{Value: []byte(msg)}, &out); err != nil {
					t.Error(err)
					return
				}
				want := metric.Sample{Path: fmt.Sprintf("w%d.i%d.m", w, i), Time: float64(i), Value: float64(w)}
				if len(out.Samples) != 1 || out.Samples[0] != want {
					t.Errorf("got %+v, want %+v", out.Samples, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSliceAllocs: paths are carved from the Result's chunks, so a message
// of the data or prefixes shape costs no allocation of its own (a 16 KiB
// chunk every few dozen messages).
func TestSliceAllocs(t *testing.T) {
	dec := newSliceDecoder(t, nil)
	for _, in := range []string{benchSliceMessage, benchPrefixesMessage} {
		msg := &metric.Message{Value: []byte(in)}
		var out metric.Result
		require.NoError(t, dec.Decode(msg, &out))
		require.NotEmpty(t, out.Samples)
		allocs := testing.AllocsPerRun(1000, func() {
			out.Reset()
			_ = dec.Decode(msg, &out)
		})
		require.Less(t, allocs, 0.1, in)
	}
}

// FuzzSlice checks the decoder against a model of the slice shape built on
// encoding/json: for any input the decoder must not panic, must either
// return samples or reject the whole message (never both), must only return
// finite values, and must return exactly the samples, rejections and
// whole-message reason that the model derives from encoding/json's reading
// of the same bytes.
func FuzzSlice(f *testing.F) {
	for _, in := range goldenFiles(f, "slice", ".json") {
		value, err := os.ReadFile(in)
		require.NoError(f, err)
		f.Add(value)
	}
	f.Add([]byte(benchSliceMessage))
	for _, a := range amplifiers(f, 2<<10)[:3] { // the slice decoder's
		f.Add(a.value)
	}
	dec := newSliceDecoder(f, nil)
	const maxDepth = 32 // the default

	f.Fuzz(func(t *testing.T, value []byte) {
		earlier := metric.Sample{Path: "earlier", Time: 1, Value: 1}
		out := metric.Result{Samples: []metric.Sample{earlier}}
		msg := &metric.Message{Value: value}
		err := dec.Decode(msg, &out)
		checkBudget(t, dec, msg)
		got := out.Samples[1:]
		require.Equal(t, earlier, out.Samples[0], "earlier samples are kept")
		if err != nil {
			require.Empty(t, got, "samples and a whole-message error")
			require.Empty(t, out.Rejected, "rejections and a whole-message error")
			var re *metric.RejectError
			require.ErrorAs(t, err, &re)
		}
		for _, s := range got {
			require.True(t, metric.ValidPath(s.Path), "the decoder vouches for its paths (metric.CheckedPaths): %q", s.Path)
			require.False(t, math.IsInf(s.Value, 0) || math.IsNaN(s.Value), "sample %+v", s)
			require.False(t, math.IsInf(s.Time, 0) || math.IsNaN(s.Time) || s.Time < 0, "sample %+v", s)
		}

		// The model. Invalid UTF-8 inside strings is the one thing
		// encoding/json accepts that the decoder refuses. A broken document
		// may be too deep before it is broken: the decoder stops at the
		// depth limit rather than read on.
		if !json.Valid(value) || !utf8.Valid(value) {
			require.Contains(t, []string{metric.ReasonInvalidJSON, decoders.ReasonTooDeep}, metric.ReasonOf(err), "err: %v", err)
			if metric.ReasonOf(err) == decoders.ReasonTooDeep {
				require.ErrorIs(t, jsonscan.Scanner{MaxDepth: maxDepth}.Validate(value), jsonscan.ErrTooDeep)
			}
			return
		}
		ref, rerr := jsonref.Decode(value)
		require.NoError(t, rerr)
		if depth(ref) > maxDepth {
			require.Equal(t, decoders.ReasonTooDeep, metric.ReasonOf(err), "err: %v", err)
			return
		}
		want := sliceModel(ref)
		if want.skip {
			return
		}
		if want.reason != "" {
			require.Equal(t, want.reason, metric.ReasonOf(err), "err: %v", err)
			return
		}
		require.NoError(t, err)
		require.Equal(t, want.samples, append([]metric.Sample{}, got...))
		require.Equal(t, want.rejected, append([]metric.Rejection{}, out.Rejected...))
	})
}

type sliceExpect struct {
	samples  []metric.Sample
	rejected []metric.Rejection
	reason   string
	skip     bool // the model does not know this shape
}

// sliceModel says what the slice decoder must make of a document, read by
// encoding/json: the rules of the decoder's doc comment, written again
// over a plain tree.
func sliceModel(ref any) sliceExpect {
	obj, ok := ref.(jsonref.Object)
	if !ok {
		return sliceExpect{reason: metric.ReasonBadShape}
	}
	tsRef, hasTS := first(obj, "ts")
	dataRef, hasData := first(obj, "data")
	if _, ok := first(obj, "prefixes"); ok {
		return sliceExpect{skip: true} // the model knows the data shape only
	}
	if _, ok := first(obj, "slice_data"); ok {
		return sliceExpect{skip: true}
	}
	num, ok := tsRef.(json.Number)
	if !hasTS || !ok {
		return sliceExpect{reason: metric.ReasonBadTimestamp}
	}
	ts, err := strconv.ParseFloat(string(num), 64)
	if err != nil || ts < 0 {
		return sliceExpect{reason: metric.ReasonBadTimestamp}
	}
	data, ok := dataRef.(jsonref.Object)
	if !hasData || !ok {
		return sliceExpect{reason: metric.ReasonBadShape}
	}
	var e sliceExpect
	for _, o := range data {
		metrics, ok := o.Value.(jsonref.Object)
		if !ok {
			return sliceExpect{reason: metric.ReasonBadShape}
		}
		for _, m := range metrics {
			path, reason := modelPaths.Sanitize(o.Key + "." + m.Key)
			if name, _ := modelPaths.Sanitize(m.Key); name == "" {
				reason = metric.ReasonBadPath
				path, _ = modelPaths.Sanitize(o.Key)
			}
			if reason != "" {
				e.rejected = append(e.rejected, metric.Rejection{Path: path, Reason: reason})
				continue
			}
			v, reason := modelValue(m.Value)
			if reason != "" {
				e.rejected = append(e.rejected, metric.Rejection{Path: path, Reason: reason})
				continue
			}
			e.samples = append(e.samples, metric.Sample{Path: path, Time: ts + 0, Value: v})
		}
	}
	if e.samples == nil {
		e.samples = []metric.Sample{}
	}
	if e.rejected == nil {
		e.rejected = []metric.Rejection{}
	}
	return e
}

var modelPaths = decoders.NewPathSanitizer(decoders.DefaultPathConfig())

// modelValue is the default value policy over encoding/json's reading.
func modelValue(ref any) (float64, string) {
	var text string
	switch v := ref.(type) {
	case json.Number:
		text = string(v)
	case string:
		text = v
	case bool:
		if v {
			return 1, ""
		}
		return 0, ""
	case nil:
		return 0, decoders.ReasonNull
	default:
		return 0, metric.ReasonNotANumber
	}
	v, err := strconv.ParseFloat(text, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, metric.ReasonNotANumber
	case math.IsInf(v, 0) || math.IsNaN(v):
		return 0, metric.ReasonNotFinite
	}
	return v + 0, ""
}

func first(obj jsonref.Object, key string) (any, bool) {
	for _, m := range obj {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case jsonref.Object:
		for _, m := range v {
			d = max(d, depth(m.Value))
		}
		return d + 1
	case []any:
		for _, e := range v {
			d = max(d, depth(e))
		}
		return d + 1
	}
	return 0
}

// benchSliceMessage is a typical message: 10 metrics in 3 objects, integers
// and 3-decimal floats.
const benchSliceMessage = `{"type":"slice","ts":1484291389,"data":{` +
	`"voltha.internal.abc":{"deferreds":12,"rss-mb":80.125,"cpu":3.250,"fds":140},` +
	`"voltha.internal.def":{"deferreds":7,"rss-mb":91.500,"cpu":1.875},` +
	`"voltha.adapter.ponsim_olt":{"rx_bytes":123456789,"tx_bytes":98765.432,"errors":0}}}`

func BenchmarkSlice(b *testing.B) {
	dec := newSliceDecoder(b, nil)
	msg := &metric.Message{Value: []byte(benchSliceMessage)}
	var out metric.Result
	b.SetBytes(int64(len(msg.Value)))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := dec.Decode(msg, &out); err != nil || len(out.Samples) != 10 {
			b.Fatal(err, len(out.Samples))
		}
	}
}

// BenchmarkSliceEncodingJSON is the baseline the decoder replaces:
// encoding/json into maps, then the same walk.
func BenchmarkSliceEncodingJSON(b *testing.B) {
	msg := []byte(benchSliceMessage)
	var out metric.Result
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		var m struct {
			TS   float64                       `json:"ts"`
			Data map[string]map[string]float64 `json:"data"`
		}
		if err := json.Unmarshal(msg, &m); err != nil {
			b.Fatal(err)
		}
		for obj, metrics := range m.Data {
			for name, v := range metrics {
				out.Samples = append(out.Samples, metric.Sample{Path: obj + "." + name, Time: m.TS, Value: v})
			}
		}
	}
}

// benchPrefixesMessage and benchSliceDataMessage are the other two shapes,
// 10 metrics each.
const benchPrefixesMessage = `{"type":"slice","ts":1484291389.5,"prefixes":{` +
	`"voltha.simulated_olt.eecd8f5327bc":{"metrics":{"cpu_util":24.54,"buffer_util":18.40,"rx":1,"tx":2,"err":0}},` +
	`"voltha.simulated_olt.ffff8f5327bc":{"metrics":{"cpu_util":4.54,"buffer_util":8.40,"rx":3,"tx":4,"err":1}}}}`

const benchSliceDataMessage = `{"type":"slice","ts":1534440704.0,"slice_data":[` +
	`{"metadata":{"title":"Ethernet","ts":1534440704.0,"logical_device_id":"000000139521a269","device_id":"000115929ed71696",` +
	`"serial_no":"dummy_sn2209199","context":{"port_no":"1"}},"metrics":{"tx_packets":16.0,"tx_bytes":1436.0,"rx_packets":3,"rx_bytes":400,"errors":0}},` +
	`{"metadata":{"title":"PON","ts":1534440704.0,"logical_device_id":"000000139521a269","device_id":"000115929ed71696",` +
	`"serial_no":"dummy_sn2209199","context":{"port_no":"16"}},"metrics":{"tx_packets":6.0,"tx_bytes":36.0,"rx_packets":13,"rx_bytes":40,"errors":1}}]}`

func BenchmarkSlicePrefixes(b *testing.B) {
	benchDecoder(b, newSliceDecoder(b, nil), &metric.Message{Value: []byte(benchPrefixesMessage)})
}

func BenchmarkSliceData(b *testing.B) {
	benchDecoder(b, newSliceDecoder(b, nil), &metric.Message{Value: []byte(benchSliceDataMessage)})
}

func TestSliceOptions(t *testing.T) {
	tests := []struct {
		name string
		set  func(*decoders.SliceConfig)
		msg  string
		want string
	}{
		{
			name: "missing ts takes the receive time when configured",
			set:  func(c *decoders.SliceConfig) { c.MissingTimestamp = "receive_time" },
			msg:  `{"data":{"a":{"b":1}}}`,
			want: "a.b 1 1700000000\n",
		},
		{
			name: "missing ts is rejected by default",
			msg:  `{"data":{"a":{"b":1}}}`,
			want: "error bad_timestamp: no ts member\n",
		},
		{
			name: "slice_data_path",
			set:  func(c *decoders.SliceConfig) { c.SliceDataPath = "olt.{serial_no}.{context.port_no}.{title}_{metric}" },
			msg:  `{"ts":1,"slice_data":[{"metadata":{"title":"Eth","serial_no":"sn1","context":{"port_no":"3"}},"metrics":{"rx":1}}]}`,
			want: "olt.sn1.3.Eth_rx 1 1\n",
		},
		{
			name: "values and sanitize",
			set: func(c *decoders.SliceConfig) {
				c.Values.Booleans, c.Values.NumericStrings = false, false
				c.Sanitize.Replacement = ""
			},
			msg:  `{"ts":1,"data":{"a b":{"t":true,"s":"1","n":2}}}`,
			want: "ab.n 2 1\nreject ab.t not_a_number\nreject ab.s not_a_number\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := newSliceDecoder(t, tt.set)
			var out metric.Result
			err := dec.Decode(&metric.Message{Value: []byte(tt.msg), Timestamp: goldenReceiveTime}, &out)
			require.Equal(t, tt.want, render(out, err))
		})
	}
}
