package decoders_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

// checkBudget holds a decoder to its output budget on msg: the fuzz
// targets call it on every input.
//
//   - Under the router's default budget for value's size, what it returns
//     costs no more than that budget: ratio × size + floor, whatever the
//     input.
//   - With a budget of exactly what it spent under a larger one, it
//     returns the same; with one byte less, it rejects the message whole
//     as output_budget, with nothing in the result: a decoder charges as
//     it goes and stops at the first charge past the budget.
func checkBudget(t *testing.T, dec metric.Decoder, msg *metric.Message) {
	t.Helper()
	checkBudgetAbove(t, dec, msg, 0)
}

// checkBudgetAbove is checkBudget for a decoder that also refuses a
// message whose budget is below floor for work it does not charge (the
// protobuf decoder's parse: see protoParseCost): the exact and short
// budgets are checked only above floor.
func checkBudgetAbove(t *testing.T, dec metric.Decoder, msg *metric.Message, floor int) {
	t.Helper()
	limits := metric.DefaultOutputLimits()
	// "Unbounded", but within four default budgets: the fuzzer's
	// mutations of an amplifying seed would otherwise make megabytes.
	free := metric.Result{Budget: 4 * limits.Budget(msg.Size())}
	freeErr := dec.Decode(msg, &free)
	def := metric.Result{Budget: limits.Budget(msg.Size())}
	err := dec.Decode(msg, &def)
	require.LessOrEqual(t, def.Cost(), def.Budget)
	require.LessOrEqual(t, float64(def.Cost()), limits.Ratio*float64(len(msg.Value))+float64(limits.Min))
	if err == nil {
		require.LessOrEqual(t, def.Spent(), def.Budget)
	}
	if metric.ReasonOf(err) == metric.ReasonOverBudget {
		require.Empty(t, def.Samples)
		require.Empty(t, def.Rejected)
	}
	if freeErr != nil || free.Spent() == 0 {
		return
	}
	require.Equal(t, free.Cost(), min(free.Cost(), free.Spent()), "every sample and rejection is charged")

	exact := metric.Result{Budget: max(free.Spent(), floor)}
	require.NoError(t, dec.Decode(msg, &exact))
	require.Equal(t, free.Samples, exact.Samples)
	require.Equal(t, free.Rejected, exact.Rejected)
	if free.Spent()-1 < floor {
		return
	}

	short := metric.Result{Budget: free.Spent() - 1}
	err = dec.Decode(msg, &short)
	require.Equal(t, metric.ReasonOverBudget, metric.ReasonOf(err), "err: %v", err)
	require.Empty(t, short.Samples)
	require.Empty(t, short.Rejected)
}

// longKey is a dotted name of n bytes whose segments Carbon accepts.
func longKey(n int) string {
	seg := strings.Repeat("k", 200)
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()[:n]
}

// shortNames writes distinct short metric names as JSON members until b
// holds size bytes.
func shortNames(b *bytes.Buffer, size int) {
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(b, `"%x":1`, i)
	}
}

// amplifiers are messages that decode into far more than their size, one
// per class of issue 11: a long object key shared by many short metric
// names (data and prefixes), a slice_data entry whose metadata all its
// metrics share, a json path template with an array field or a repeated
// field, and a pickle that references one long-path tuple through the memo
// again and again. Each is about size bytes and would decode into 100 to
// 1 000 times that.
func amplifiers(t testing.TB, size int) []amplifier {
	key := longKey(metric.MaxNameLen - 48) // the longest name carbon stores, less room for the metric name
	var data, prefixes, sliceData, jsonArray, jsonRepeat bytes.Buffer
	n := size - 64 // room for the closing brackets
	fmt.Fprintf(&data, `{"type":"slice","ts":1700000000,"data":{"%s":{`, key)
	shortNames(&data, n)
	data.WriteString("}}}")
	fmt.Fprintf(&prefixes, `{"type":"slice","ts":1700000000,"prefixes":{"%s":{"metrics":{`, key)
	shortNames(&prefixes, n)
	prefixes.WriteString("}}}}")
	seg := strings.Repeat("m", 200)
	fmt.Fprintf(&sliceData, `{"type":"slice","ts":1700000000,"slice_data":[{"metadata":{"title":"%s","device_id":"%s","context":{`, seg, seg)
	for i := range 7 { // with title and device_id, 9 segments of 200 bytes: the longest path carbon stores
		if i > 0 {
			sliceData.WriteByte(',')
		}
		fmt.Fprintf(&sliceData, `"c%d":"%s"`, i, seg)
	}
	sliceData.WriteString(`}},"metrics":{`)
	shortNames(&sliceData, n)
	sliceData.WriteString("}}]}")
	fmt.Fprintf(&jsonArray, `{"ts":1700000000,"tags":[`)
	for i := range 9 {
		if i > 0 {
			jsonArray.WriteByte(',')
		}
		fmt.Fprintf(&jsonArray, `"%s"`, seg)
	}
	jsonArray.WriteString(`],"counters":{`)
	shortNames(&jsonArray, n)
	jsonArray.WriteString("}}")
	fmt.Fprintf(&jsonRepeat, `{"ts":1700000000,"host":"%s","counters":{`, seg)
	shortNames(&jsonRepeat, n)
	jsonRepeat.WriteString("}}")

	return []amplifier{
		{"slice data: one 2 KB key, short names", newSliceDecoder(t, nil), data.Bytes()},
		{"slice prefixes: one 2 KB key, short names", newSliceDecoder(t, nil), prefixes.Bytes()},
		{"slice_data: one entry's 2 KB metadata, short names", newSliceDecoder(t, nil), sliceData.Bytes()},
		{"json: an array field in the path", newDecoder(t, "json", func(c *decoders.JSONConfig) {
			c.Path, c.Timestamp.Field, c.MetricsObject = "{tags}.{metric}", "ts", "counters"
		}), jsonArray.Bytes()},
		{"json: a field repeated in the path", newDecoder(t, "json", func(c *decoders.JSONConfig) {
			c.Path = strings.Repeat("{host}.", 9) + "{metric}"
			c.Timestamp.Field, c.MetricsObject = "ts", "counters"
		}), jsonRepeat.Bytes()},
		{"pickle: one 3.8 KB-path tuple referenced through the memo", newDecoder[decoders.PickleConfig](t, "carbon-pickle", nil),
			PickleMemoBomb(longKey(3800), (size-4096)/2)},
	}
}

type amplifier struct {
	name  string
	dec   metric.Decoder
	value []byte
}

// PickleMemoBomb is [(path, (1700000000, 1))] * refs as a pickle whose
// list holds refs memo references (BINGET) to one tuple.
func PickleMemoBomb(path string, refs int) []byte {
	b := []byte{0x80, 2, ']', 'q', 0, '('}
	b = append(b, 'X')
	b = binary.LittleEndian.AppendUint32(b, uint32(len(path)))
	b = append(b, path...)
	b = append(b, 'J')
	b = binary.LittleEndian.AppendUint32(b, 1700000000)
	b = append(b, 'K', 1, 0x86, 0x86, 'q', 1) // TUPLE2 TUPLE2 BINPUT 1
	for range refs - 1 {
		b = append(b, 'h', 1)
	}
	return append(b, 'e', '.')
}

// TestOutputBudgetAttacks: every amplifying message is rejected whole as
// output_budget under the router's default budget, having allocated no
// more than the budget and its own size's worth; the same message cut
// down to fit the budget decodes.
func TestOutputBudgetAttacks(t *testing.T) {
	const size = 1 << 20
	limits := metric.DefaultOutputLimits()
	for _, a := range amplifiers(t, size) {
		t.Run(a.name, func(t *testing.T) {
			msg := &metric.Message{Value: a.value}
			budget := limits.Budget(msg.Size())

			// Before the budget, these decoded into hundreds of times
			// their size (gigabytes, for the pickle): still too much for
			// twice the default ratio.
			twice := metric.Result{Budget: 2 * budget}
			require.Equal(t, metric.ReasonOverBudget, metric.ReasonOf(a.dec.Decode(msg, &twice)), "the attack amplifies")

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			out := metric.Result{Budget: budget}
			err := a.dec.Decode(msg, &out)
			runtime.ReadMemStats(&after)
			require.Equal(t, metric.ReasonOverBudget, metric.ReasonOf(err), "err: %v", err)
			require.Empty(t, out.Samples)
			// It stops at the first charge past the budget (the slice
			// decoder's general pass makes one more: see decodeSinglePass).
			require.LessOrEqual(t, out.Spent(), budget+2*(metric.MaxPathLen+128), "stops at the first charge past the budget")
			allocated := after.TotalAlloc - before.TotalAlloc
			// Slack: the samples' slice doubles as it grows, and the
			// paths live in 16 KB chunks.
			require.Less(t, allocated, uint64(2*budget+len(a.value)), "allocated %d bytes for a %d-byte message", allocated, len(a.value))
			t.Logf("%d bytes in: rejected after %d bytes charged (budget %d), %d allocated",
				len(a.value), out.Spent(), budget, allocated)
		})
	}
}

// TestPickleMemoIndexIsFree: a 9-byte pickle that puts memo entry 65 535
// costs one entry, not 65 536, and no more on the next message.
func TestPickleMemoIndexIsFree(t *testing.T) {
	dec := newDecoder[decoders.PickleConfig](t, "carbon-pickle", nil)
	msg := &metric.Message{Value: []byte{0x80, 0x02, 0x5d, 0x72, 0xff, 0xff, 0x00, 0x00, 0x2e}}
	var out metric.Result
	require.NoError(t, dec.Decode(msg, &out))
	require.Empty(t, out.Samples)
	require.Less(t, out.Spent(), 200, "one memo entry charged (the list's 32 bytes, a map entry's 96)")
	out.Reset()
	allocs := testing.AllocsPerRun(100, func() { _ = dec.Decode(msg, &out) })
	require.LessOrEqual(t, allocs, 4.0, "the machine is pooled: a list, the sparse memo and its entry")
	// Every key of LONG_BINPUT's range, in order: still one entry each.
	big := []byte{0x80, 0x02, 0x5d}
	puts := 0
	for k := uint32(0); k < 1<<32-1 && len(big) < 1<<20; k = k*2 + 1 {
		big = binary.LittleEndian.AppendUint32(append(big, 'r'), k)
		puts++
	}
	out.Reset()
	require.NoError(t, dec.Decode(&metric.Message{Value: append(big, '.')}, &out))
	require.LessOrEqual(t, out.Spent(), 32+64*25+puts*96, "the list, the dense memo's first 64 slots (25 bytes each), and a map entry (96 bytes) per PUT past them")
}

// TestPickleSparseMemo: a pickle of a million sparse memo keys is charged
// what the memo's map holds, so that what it allocates stays within a
// small multiple of its budget (it allocated 21 MB, charged 5, before);
// keys that skip slots of the dense memo are charged for the slots.
func TestPickleSparseMemo(t *testing.T) {
	dec := newDecoder[decoders.PickleConfig](t, "carbon-pickle", nil)
	sparse := []byte{0x80, 2, ']'}
	for k := uint32(1 << 31); len(sparse) < 1<<20-64; k += 7919 {
		sparse = binary.LittleEndian.AppendUint32(append(sparse, 'r'), k)
	}
	msg := &metric.Message{Value: append(sparse, '.')}
	out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := dec.Decode(msg, &out)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%v: %d charged, %d allocated", err, out.Spent(), allocated)
	require.GreaterOrEqual(t, out.Spent(), int(allocated)/3, "charged for what the map holds")

	skipping := []byte{0x80, 2, ']'}
	puts := 0
	for k := uint32(64); len(skipping) < 4096; k += 2 {
		skipping = binary.LittleEndian.AppendUint32(append(skipping, 'r'), k)
		puts++
	}
	out = metric.Result{}
	require.NoError(t, dec.Decode(&metric.Message{Value: append(skipping, '.')}, &out))
	require.GreaterOrEqual(t, out.Spent(), 2*puts*24, "two slots a PUT")
}

func BenchmarkPickleMemoIndex(b *testing.B) {
	dec := newDecoder[decoders.PickleConfig](b, "carbon-pickle", nil)
	msg := &metric.Message{Value: []byte{0x80, 0x02, 0x5d, 0x72, 0xff, 0xff, 0x00, 0x00, 0x2e}}
	var out metric.Result
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := dec.Decode(msg, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPickleHostileTuples decodes 1 MB of `None None None TUPLE3
// APPEND`: 210 000 tuples the list holds, each rejected as bad_shape. It
// shows what the machine's values cost that the budget does not charge
// (docs/limits.md, Known gaps): B/op is the figure to watch.
func BenchmarkPickleHostileTuples(bm *testing.B) {
	dec := newDecoder[decoders.PickleConfig](bm, "carbon-pickle", nil)
	b := []byte{0x80, 2, ']'}
	for len(b) < 1<<20-6 {
		b = append(b, 'N', 'N', 'N', 0x87, 'a')
	}
	msg := &metric.Message{Value: append(b, '.')}
	bm.SetBytes(int64(len(msg.Value)))
	bm.ReportAllocs()
	for bm.Loop() {
		out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
		_ = dec.Decode(msg, &out)
	}
}

// hostilePickles are 1 MB pickles that make the machine hold many values
// rather than samples: empty lists, a list appending itself, memo
// references to an empty string inside a MARK, Nones appended at once.
func hostilePickles() map[string][]byte {
	const size = 1<<20 - 64
	fill := func(b []byte, unit ...byte) []byte {
		for len(b) < size {
			b = append(b, unit...)
		}
		return b
	}
	return map[string][]byte{
		"empty lists":           append(fill([]byte{0x80, 2, ']', '('}, ']'), '.'),
		"a list appends itself": append(fill([]byte{0x80, 2, ']', 'q', 0}, 'h', 0, 'a'), '.'),
		"memo references":       append(fill([]byte{0x80, 2, '(', 'X', 0, 0, 0, 0, 'q', 0}, 'h', 0), 'l', '.'),
		"Nones appended":        append(fill([]byte{0x80, 2, ']', '('}, 'N'), 'e', '.'),
	}
}

// TestPickleMachineAllocations: a pickle that makes the machine hold
// values is stopped at its budget having allocated at most four times it
// (the machine's slices double as they grow: see docs/limits.md, Known
// gaps). Its stack and lists grew by append's quarter before, allocating
// up to 5.5 times the budget.
func TestPickleMachineAllocations(t *testing.T) {
	dec := newDecoder[decoders.PickleConfig](t, "carbon-pickle", nil)
	for name, v := range hostilePickles() {
		t.Run(name, func(t *testing.T) {
			msg := &metric.Message{Value: v}
			out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := dec.Decode(msg, &out)
			runtime.ReadMemStats(&after)
			require.Equal(t, metric.ReasonOverBudget, metric.ReasonOf(err), "err: %v", err)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d allocated, budget %d", allocated, out.Budget)
			require.Less(t, allocated, uint64(4*out.Budget), "allocated %d for a budget of %d", allocated, out.Budget)
		})
	}
}

// longTagMessages are 1 MB messages, one per decoder with a tags
// setting, whose one tag value (400 KB) every one of their 70 000 short
// metrics shares: no path with it can be stored.
func longTagMessages(t testing.TB) []amplifier {
	const size = 1<<20 - 100
	big := strings.Repeat("v", 400<<10)
	names := func(b *bytes.Buffer, closing string) []byte {
		shortNames(b, size-len(closing))
		b.WriteString(closing)
		return b.Bytes()
	}
	var js, slice bytes.Buffer
	fmt.Fprintf(&js, `{"ts":1700000000,"host":"%s","counters":{`, big)
	fmt.Fprintf(&slice, `{"type":"slice","ts":1700000000,"slice_data":[{"metadata":{"title":"PONStats","device_id":"d","context":{"devicetype":"%s"}},"metrics":{`, big)

	meta := pbString(pbString(nil, 1, "PONStats"), 5, "d")
	meta = pbBytes(meta, 6, pbString(pbString(nil, 1, "devicetype"), 2, big))
	info := pbBytes(nil, 1, meta)
	for i := 0; len(info) < size; i++ {
		info = pbBytes(info, 2, pbFloatEntry(strconv.FormatInt(int64(i), 36), 1))
	}
	voltha := pbBytes(nil, 4, pbBytes(pbDouble(nil, 2, 1796230800), 3, info))

	md := compileProto(t, "protobuf", "kpi.proto", "test.kpi.Kpi")
	pb := encodeJSON(t, md, []byte(`{"device":"`+big+`","at":"2026-12-02T17:00:00Z"}`))
	for i := 0; len(pb) < size; i++ {
		entry := pbDouble(pbString(nil, 1, strconv.FormatInt(int64(i), 36)), 2, 1)
		pb = pbBytes(pb, 10, entry)
	}
	return []amplifier{
		{"json", newDecoder(t, "json", func(c *decoders.JSONConfig) {
			c.Path, c.Timestamp.Field, c.MetricsObject = "{metric}", "ts", "counters"
			c.Tags = map[string]string{"host": "{host}"}
		}), names(&js, "}}")},
		{"slice", newSliceDecoder(t, volthaTags), names(&slice, "}}]}")},
		{"voltha-event", newVolthaDecoder(t, func(c *decoders.VolthaEventConfig) {
			c.Paths = map[string]string{"ponstats": "voltha.{title}.{metric}"}
			c.Tags = map[string]string{"devicetype": "{context.devicetype}"}
		}), voltha},
		{"protobuf", newDecoder(t, "protobuf", kpiProto(func(c *decoders.ProtobufConfig) {
			c.Path = "{metric}"
			c.Tags = map[string]string{"device": "{device}"}
		})), pb},
	}
}

// TestLongTagValue: a tag value too long for any path is not copied into
// every path that shares it. Before, each of 70 000 paths copied the
// 400 KB tag before it was found too long: 29 GB allocated and 10 s of a
// worker for one message; now each path is rejected as path_too_long
// where it would pass the longest path, and the message allocates within
// its budget.
func TestLongTagValue(t *testing.T) {
	for _, a := range longTagMessages(t) {
		t.Run(a.name, func(t *testing.T) {
			msg := &metric.Message{Value: a.value}
			out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := a.dec.Decode(msg, &out)
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes: %d rejected, %d allocated, err %v", len(a.value), len(out.Rejected), allocated, err)
			checkInvariants(t, out, err)
			require.Empty(t, out.Samples)
			if err == nil {
				require.Greater(t, len(out.Rejected), 10_000)
				require.Equal(t, decoders.ReasonPathTooLong, out.Rejected[0].Reason)
			}
			require.Less(t, allocated, uint64(2*out.Budget+len(a.value)), "allocated %d", allocated)
		})
	}
}
