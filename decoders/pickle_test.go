package decoders_test

import (
	"bytes"
	"math"
	"math/big"
	"os"
	"testing"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	return b
}

func TestPickleGolden(t *testing.T) {
	testGolden(t, newDecoder[decoders.PickleConfig](t, "carbon-pickle", nil), "pickle", ".pickle")
}

func TestPickleHostile(t *testing.T) {
	dec := newDecoder[decoders.PickleConfig](t, "carbon-pickle", nil)
	tests := map[string]struct {
		value  []byte
		reason string
	}{
		"GLOBAL os.system":     {[]byte("cos\nsystem\n(S'id'\ntR."), decoders.ReasonUnsafePickle},
		"INST":                 {[]byte("(S'id'\nios\nsystem\n."), decoders.ReasonUnsafePickle},
		"OBJ":                  {[]byte("(]o."), decoders.ReasonUnsafePickle},
		"BUILD":                {[]byte("]]b."), decoders.ReasonUnsafePickle},
		"NEWOBJ":               {[]byte("\x80\x02])\x81."), decoders.ReasonUnsafePickle},
		"EXT1":                 {[]byte("\x80\x02\x82\x01."), decoders.ReasonUnsafePickle},
		"PERSID":               {[]byte("Pid\n."), decoders.ReasonUnsafePickle},
		"BINPERSID":            {[]byte("\x80\x02K\x01Q."), decoders.ReasonUnsafePickle},
		"dict":                 {[]byte("}."), decoders.ReasonInvalidPickle},
		"huge BINUNICODE8":     {[]byte("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f."), decoders.ReasonInvalidPickle},
		"huge LONG4":           {[]byte("\x80\x02\x8b\xff\xff\xff\x7f."), decoders.ReasonInvalidPickle},
		"stack underflow":      {[]byte("\x80\x02a."), decoders.ReasonInvalidPickle},
		"mark then tuple1":     {[]byte("\x80\x02K\x01(\x85."), decoders.ReasonInvalidPickle},
		"unknown memo":         {[]byte("\x80\x02h\x05."), decoders.ReasonInvalidPickle},
		"10 000 marks":         {bytes.Repeat([]byte("("), 10000), decoders.ReasonTooDeep},
		"10 000 nested tuples": {append(append([]byte("\x80\x02)"), bytes.Repeat([]byte{0x85}, 10000)...), '.'), decoders.ReasonTooDeep},
		"100 MB":               {make([]byte, 100<<20), metric.ReasonTooLarge},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var out metric.Result
			err := dec.Decode(&metric.Message{Value: tt.value}, &out)
			require.Equal(t, tt.reason, metric.ReasonOf(err), "err: %v", err)
			require.Empty(t, out.Samples)
		})
	}
}

// FuzzPickle checks the decoder against gopickle, a general unpickler,
// wherever gopickle reads the input as plain data: the samples must be the
// ones gopickle's reading gives. gopickle must not see a pickle with a
// global (it would call its class hooks), so only inputs the decoder
// accepted are handed to it.
func FuzzPickle(f *testing.F) {
	for _, in := range goldenFiles(f, "pickle", ".pickle") {
		f.Add(readFile(f, in))
	}
	f.Add(PickleMemoBomb("a.b", 3000))
	f.Add([]byte{0x80, 0x02, 0x5d, 0x72, 0xff, 0xff, 0x00, 0x00, 0x2e})
	dec := newDecoder[decoders.PickleConfig](f, "carbon-pickle", nil)
	f.Fuzz(func(t *testing.T, value []byte) {
		var out metric.Result
		msg := &metric.Message{Value: value}
		err := dec.Decode(msg, &out)
		checkInvariants(t, out, err)
		checkBudget(t, dec, msg)
		if err != nil || bytes.IndexByte(value, '\\') >= 0 || nonASCIIText(value) {
			// gopickle v0.2.0 leaves the escapes of protocol 0's
			// STRING and UNICODE as they are, and reads their other
			// bytes as UTF-8 where Python reads raw-unicode-escape
			// (latin-1): no reference there.
			return
		}
		ref, ok := gopickleSamples(value)
		if !ok {
			return
		}
		require.Equal(t, ref, append([]metric.Sample{}, out.Samples...))
	})
}

// nonASCIIText reports whether a line that may be a protocol-0 STRING or
// UNICODE argument (after an 'S' or 'V' byte, up to the newline) holds a
// byte above 0x7f. It errs towards yes: any such byte after any 'S' or 'V'.
func nonASCIIText(value []byte) bool {
	for i, c := range value {
		if c != 'S' && c != 'V' {
			continue
		}
		for _, d := range value[i+1:] {
			if d == '\n' {
				break
			}
			if d >= 0x80 {
				return true
			}
		}
	}
	return false
}

// gopickleSamples reads value with gopickle and applies the decoder's
// default rules to what it finds; ok is false where gopickle fails or the
// reading holds something the comparison does not model.
func gopickleSamples(value []byte) (samples []metric.Sample, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	v, err := pickle.Loads(string(value))
	if err != nil {
		return nil, false
	}
	var items []any
	switch v := v.(type) {
	case *types.List:
		items = *v
	case *types.Tuple:
		items = *v
	default:
		return nil, false
	}
	paths := decoders.NewPathSanitizer(decoders.DefaultPathConfig())
	samples = []metric.Sample{}
	for _, it := range items {
		tup, isTuple := it.(*types.Tuple)
		if !isTuple || tup.Len() != 2 {
			continue
		}
		name, isStr := tup.Get(0).(string)
		if b, isBytes := tup.Get(0).([]byte); isBytes { // Python 3 bytes are a path too
			name, isStr = string(b), true
		}
		tv, isTuple := tup.Get(1).(*types.Tuple)
		if !isStr || !isTuple || tv.Len() != 2 {
			continue
		}
		path, reason := paths.SanitizeName(name)
		ts, tok := refNumber(tv.Get(0))
		val, vok := refNumber(tv.Get(1))
		for _, x := range []any{tv.Get(0), tv.Get(1)} {
			switch x.(type) {
			case string, []byte: // numeric strings (Python's float() takes bytes too): not modelled
				return nil, false
			}
		}
		if reason != "" || !tok || !vok || ts < 0 || math.IsInf(val, 0) || math.IsNaN(val) || math.IsInf(ts, 0) || math.IsNaN(ts) {
			continue
		}
		samples = append(samples, metric.Sample{Path: path, Time: ts + 0, Value: val})
	}
	return samples, true
}

func refNumber(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case float64:
		return v, true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	case *big.Int:
		f, _ := new(big.Float).SetInt(v).Float64()
		return f, true
	}
	return 0, false
}

func BenchmarkPickle(b *testing.B) {
	dec := newDecoder[decoders.PickleConfig](b, "carbon-pickle", nil)
	msg := &metric.Message{Value: readFile(b, "testdata/pickle/bench_10.pickle")}
	benchDecoder(b, dec, msg)
}

// benchDecoder runs dec on a 10-metric message; ns/op and allocs/op are
// per message.
func benchDecoder(b *testing.B, dec metric.Decoder, msg *metric.Message) {
	// Under the budget the router gives the message, as it decodes it:
	// what decoders do for the budget (the protobuf decoder's walk) counts.
	out := metric.Result{Budget: metric.DefaultOutputLimits().Budget(msg.Size())}
	b.SetBytes(int64(len(msg.Value)))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := dec.Decode(msg, &out); err != nil || len(out.Samples) != 10 {
			b.Fatal(err, len(out.Samples), out.Rejected)
		}
	}
}

// TestPickleProtocol0UnicodeIsRawUnicodeEscape pins Python's reading of a
// protocol-0 UNICODE argument: bytes above 0x7f are latin-1 code points
// (raw-unicode-escape), not UTF-8. The fuzzer found gopickle disagreeing.
func TestPickleProtocol0UnicodeIsRawUnicodeEscape(t *testing.T) {
	dec := newDecoder[decoders.PickleConfig](t, "carbon-pickle", nil)
	var out metric.Result
	// [(u'\xe8.cpu', (1700000000.0, 1.0))] as protocol 0, with a raw 0xe8 byte.
	require.NoError(t, dec.Decode(&metric.Message{Value: []byte("(lp0\n(V\xe8.cpu\n(F1700000000\nF1\ntta.")}, &out))
	require.Equal(t, []metric.Sample{{Path: "è.cpu", Time: 1700000000, Value: 1}}, out.Samples)
}
