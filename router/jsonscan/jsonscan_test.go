package jsonscan

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  error // nil: valid
	}{
		{"object", `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, nil},
		{"white space", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", nil},
		{"scalar top level", `"x"`, nil},
		{"number top level", `-0.5e+10`, nil},
		{"empty containers", `[{},[],""]`, nil},
		{"escapes", `"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"`, nil},
		{"lone surrogate is grammatical", `"\ud800"`, nil},
		{"utf8", "\"h\u00e9llo \u2603 \U0001F600\"", nil},
		{"duplicate keys", `{"a":1,"a":2}`, nil},

		{"empty", ``, ErrSyntax},
		{"only space", `   `, ErrSyntax},
		{"truncated object", `{"a":1`, ErrSyntax},
		{"truncated string", `{"a":"b`, ErrSyntax},
		{"truncated escape", `"\u00`, ErrSyntax},
		{"trailing comma object", `{"a":1,}`, ErrSyntax},
		{"trailing comma array", `[1,]`, ErrSyntax},
		{"leading comma", `[,1]`, ErrSyntax},
		{"missing colon", `{"a" 1}`, ErrSyntax},
		{"unquoted key", `{a:1}`, ErrSyntax},
		{"single quotes", `{'a':1}`, ErrSyntax},
		{"mismatched close", `[1}`, ErrSyntax},
		{"mismatched nested close", `{"a":[1}}`, ErrSyntax},
		{"two values", `{} {}`, ErrSyntax},
		{"trailing garbage", `1 x`, ErrSyntax},
		{"comment", `{"a":1 /* no */}`, ErrSyntax},
		{"leading zero", `01`, ErrSyntax},
		{"plus sign", `+1`, ErrSyntax},
		{"bare dot", `.5`, ErrSyntax},
		{"dot without digits", `1.`, ErrSyntax},
		{"exponent without digits", `1e+`, ErrSyntax},
		{"hex", `0x10`, ErrSyntax},
		{"NaN", `NaN`, ErrSyntax},
		{"Infinity", `-Infinity`, ErrSyntax},
		{"bad literal", `tru`, ErrSyntax},
		{"capital literal", `True`, ErrSyntax},
		{"raw newline in string", "\"a\nb\"", ErrSyntax},
		{"raw tab in string", "\"a\tb\"", ErrSyntax},
		{"bad escape", `"\x41"`, ErrSyntax},
		{"bad unicode escape", `"\u00g0"`, ErrSyntax},
		{"invalid utf8 in string", "\"\xff\"", ErrSyntax},
		{"overlong utf8", "\"\xc0\xaf\"", ErrSyntax},
		{"utf8-encoded surrogate", "\"\xed\xa0\x80\"", ErrSyntax},
		{"invalid utf8 outside string", "\xff", ErrSyntax},
		{"form feed is not white space", "\f1", ErrSyntax},
		{"nbsp is not white space", "\u00a01", ErrSyntax},
		{"too deep", strings.Repeat("[", 65) + strings.Repeat("]", 65), ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Scanner{}.Validate([]byte(tt.in))
			if tt.err == nil {
				require.NoError(t, err)
				require.True(t, Valid([]byte(tt.in)))
				return
			}
			require.ErrorIs(t, err, tt.err)
			var e *Error
			require.ErrorAs(t, err, &e)
			require.LessOrEqual(t, e.Offset, len(tt.in))
			require.False(t, Valid([]byte(tt.in)))
		})
	}
}

func TestDepth(t *testing.T) {
	nest := func(n int) []byte {
		return []byte(strings.Repeat(`{"a":[`, n) + "1" + strings.Repeat("]}", n))
	}
	// nest(n) is 2n levels deep.
	require.NoError(t, Scanner{}.Validate(nest(32)))
	require.ErrorIs(t, Scanner{}.Validate(nest(33)), ErrTooDeep)
	require.NoError(t, Scanner{MaxDepth: 5000}.Validate(nest(2500)), "beyond 64 levels the bit stack spills to the heap")
	require.ErrorIs(t, Scanner{MaxDepth: 5000}.Validate(nest(2501)), ErrTooDeep)
	require.ErrorIs(t, Scanner{MaxDepth: 3}.ObjectEach([]byte(`{"a":{"b":{"c":{}}}}`), nop), ErrTooDeep)
	require.NoError(t, Scanner{MaxDepth: 3}.ObjectEach([]byte(`{"a":{"b":{"c":1}}}`), nop))
	require.ErrorIs(t, Scanner{MaxDepth: 1}.ArrayEach([]byte(`[[]]`), func([]byte, Kind) error { return nil }), ErrTooDeep)

	// A hostile document is refused at the limit, not after reading it all.
	// The error's offset says where reading stopped.
	hostile := []byte(strings.Repeat("[", 10_000_000))
	err := Scanner{}.Validate(hostile)
	require.ErrorIs(t, err, ErrTooDeep)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, DefaultMaxDepth, e.Offset)
}

func nop([]byte, []byte, Kind) error { return nil }

type kv struct {
	key, value string
	kind       Kind
}

func collect(t *testing.T, s Scanner, doc string) ([]kv, error) {
	t.Helper()
	var got []kv
	err := s.ObjectEach([]byte(doc), func(key, value []byte, kind Kind) error {
		got = append(got, kv{string(key), string(value), kind})
		return nil
	})
	return got, err
}

func TestObjectEach(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []kv
		err  error
	}{
		{"empty", ` { } `, nil, nil},
		{"kinds in document order", `{"s":"x\ny","n":-1.5e3,"t":true,"f":false,"z":null,"o":{"a":[1]},"a":[{},2]}`, []kv{
			{"s", `"x\ny"`, String}, {"n", "-1.5e3", Number}, {"t", "true", Bool}, {"f", "false", Bool},
			{"z", "null", Null}, {"o", `{"a":[1]}`, Object}, {"a", `[{},2]`, Array},
		}, nil},
		{"duplicates kept", `{"a":1,"a":2}`, []kv{{"a", "1", Number}, {"a", "2", Number}}, nil},
		{"escaped key unescaped", `{"a\u002eb":1,"\ud83d\ude00":2,"\"q\"":3}`, []kv{
			{"a.b", "1", Number}, {"\U0001F600", "2", Number}, {`"q"`, "3", Number},
		}, nil},
		{"lone surrogate key", `{"\udc00x":1}`, []kv{{"\uFFFDx", "1", Number}}, nil},
		{"value keeps inner white space", `{"o": { "a" : 1 } }`, []kv{{"o", `{ "a" : 1 }`, Object}}, nil},
		{"array is not an object", `[1]`, nil, ErrKind},
		{"string is not an object", `"{}"`, nil, ErrKind},
		{"broken non-object is a syntax error", `[1`, nil, ErrSyntax},
		{"broken after members", `{"a":1,"b":`, []kv{{"a", "1", Number}}, ErrSyntax},
		{"broken inside skipped value", `{"a":[1,2,}`, nil, ErrSyntax},
		{"trailing garbage", `{"a":1}x`, nil, ErrSyntax},
		{"invalid utf8 in key", "{\"\xff\":1}", nil, ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(t, Scanner{}, tt.in)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("fn error stops and is returned unchanged", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := ObjectEach([]byte(`{"a":1,"b":2}`), func([]byte, []byte, Kind) error { calls++; return stop })
		require.Same(t, stop, err)
		require.Equal(t, 1, calls)
	})
	t.Run("value capacity is capped", func(t *testing.T) {
		doc := []byte(`{"a":1,"b":2}`)
		require.NoError(t, ObjectEach(doc, func(_, v []byte, _ Kind) error {
			_ = append(v, 'X')
			return nil
		}))
		require.Equal(t, `{"a":1,"b":2}`, string(doc))
	})
}

func TestArrayEach(t *testing.T) {
	var got []string
	err := ArrayEach([]byte(` [ 1 , "a" , {"b":[]} , [] ] `), func(v []byte, k Kind) error {
		got = append(got, k.String()+":"+string(v))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"number:1", `string:"a"`, `object:{"b":[]}`, "array:[]"}, got)
	require.NoError(t, ArrayEach([]byte(`[]`), func([]byte, Kind) error { panic("called") }))
	require.ErrorIs(t, ArrayEach([]byte(`{}`), func([]byte, Kind) error { return nil }), ErrKind)
	require.ErrorIs(t, ArrayEach([]byte(`[1 2]`), func([]byte, Kind) error { return nil }), ErrSyntax)
	require.ErrorIs(t, ArrayEach([]byte(`[1]]`), func([]byte, Kind) error { return nil }), ErrSyntax)
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name, in, key string
		value         string
		kind          Kind
		err           error
	}{
		{"found", `{"type":"slice","ts":1}`, "ts", "1", Number, nil},
		{"first wins", `{"a":1,"a":2}`, "a", "1", Number, nil},
		{"escaped key", `{"t\u0079pe":"x"}`, "type", `"x"`, String, nil},
		{"long escaped key", `{"` + strings.Repeat(`\u0061`, 100) + `":1}`, strings.Repeat("a", 100), "1", Number, nil},
		{"nested keys are not top level", `{"o":{"type":"x"}}`, "type", "", Invalid, ErrNotFound},
		{"case sensitive", `{"Type":"x"}`, "type", "", Invalid, ErrNotFound},
		{"empty object", `{}`, "a", "", Invalid, ErrNotFound},
		{"invalid after the member", `{"type":"x",}`, "type", "", Invalid, ErrSyntax},
		{"not an object", `["type"]`, "type", "", Invalid, ErrKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, kind, err := Lookup([]byte(tt.in), tt.key)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.value, string(v))
			require.Equal(t, tt.kind, kind)
		})
	}
}

func TestTopLevelString(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error
	}{
		{"plain", `{"ts":1,"type":"slice"}`, "slice", nil},
		{"escaped value", `{"type":"sl\u0069ce\n"}`, "slice\n", nil},
		{"surrogate pair", `{"type":"\ud83d\ude00"}`, "\U0001F600", nil},
		{"first wins", `{"type":"a","type":"b"}`, "a", nil},
		{"empty string", `{"type":""}`, "", nil},
		{"number", `{"type":1}`, "", ErrKind},
		{"missing", `{"kind":"slice"}`, "", ErrNotFound},
		{"invalid", `{"type":"slice"`, "", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TopLevelString([]byte(tt.in), "type")
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0", 0, true},
		{"-0", math.Copysign(0, -1), true},
		{"12", 12, true},
		{"-1.25", -1.25, true},
		{"1480000000", 1480000000, true},
		{"1484291389.5", 1484291389.5, true},
		{"1E3", 1000, true},
		{"1e-999", 0, true},
		{"0.1", 0.1, true},
		{"-0.0", math.Copysign(0, -1), true},
		{"0.000000000000001", 1e-15, true},
		{"123456789012345", 123456789012345, true},
		{"1234567890123456", 1234567890123456, true},
		{"9007199254740993", 9007199254740992, true},
		{"98765.432", 98765.432, true},
		{"1e999", math.Inf(1), true},
		{"-1e999", math.Inf(-1), true},
		{"", 0, false},
		{"-", 0, false},
		{"+1", 0, false},
		{".5", 0, false},
		{"1.", 0, false},
		{"01", 0, false},
		{"-01", 0, false},
		{"00.5", 0, false},
		{"1.5.5", 0, false},
		{"1-", 0, false},
		{"0x10", 0, false},
		{"1_000", 0, false},
		{"Inf", 0, false},
		{"NaN", 0, false},
		{"1 ", 0, false},
		{`"1"`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseNumber([]byte(tt.in))
			if !tt.ok {
				require.ErrorIs(t, err, ErrSyntax)
				return
			}
			require.NoError(t, err)
			require.Equal(t, math.Float64bits(tt.want), math.Float64bits(got), "got %v", got)
		})
	}
}

func TestUnquote(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error
	}{
		{"plain", `"abc"`, "abc", nil},
		{"simple escapes", `"\"\\\/\b\f\n\r\t"`, "\"\\/\b\f\n\r\t", nil},
		{"bmp", `"\u00e9\u2603"`, "é☃", nil},
		{"pair", `"\uD83D\uDE00"`, "\U0001F600", nil},
		{"lone high", `"\ud800x"`, "\uFFFDx", nil},
		{"lone low", `"\udc00"`, "\uFFFD", nil},
		{"high then non-low escape", `"\ud800\u0041"`, "\uFFFDA", nil},
		{"two highs", `"\ud800\ud83d\ude00"`, "\uFFFD\U0001F600", nil},
		{"raw utf8", "\"\u00e9\"", "é", nil},
		{"not a string", `12`, "", ErrKind},
		{"unterminated", `"ab`, "", ErrSyntax},
		{"trailing", `"a"b`, "", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Unquote([]byte(tt.in))
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			b, err := AppendString([]byte("pre:"), []byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, "pre:"+tt.want, string(b))
		})
	}
}

func TestErrorText(t *testing.T) {
	err := Scanner{}.Validate([]byte("{\"a\":\"\x01\"}"))
	require.EqualError(t, err, `jsonscan: invalid JSON at offset 6: control character byte 0x01 in string`)
	_, _, err = Lookup([]byte(`[]`), "a")
	require.EqualError(t, err, `jsonscan: unexpected kind of value at offset 0: want object, found array`)
}

// The hot paths must not allocate: that is why this package exists.
func TestNoAllocs(t *testing.T) {
	msg := []byte(benchMessage)
	tests := map[string]func(){
		"Valid": func() { _ = Valid(msg) },
		"ObjectEach nested": func() {
			_ = ObjectEach(msg, func(_, v []byte, k Kind) error {
				if k == Object {
					return ObjectEach(v, func(_, v []byte, k Kind) error {
						if k == Object {
							return ObjectEach(v, nop)
						}
						return nil
					})
				}
				return nil
			})
		},
		"Lookup": func() { _, _, _ = Lookup(msg, "ts") },
		"Lookup escaped key": func() {
			_, _, _ = Lookup([]byte(`{"t\u0079pe":"slice"}`), "type")
		},
		"ParseNumber": func() { _, _ = ParseNumber([]byte("1484291389.125")) },
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			require.Zero(t, testing.AllocsPerRun(100, fn))
		})
	}
	t.Run("TopLevelString allocates only the result", func(t *testing.T) {
		require.Equal(t, 1.0, testing.AllocsPerRun(100, func() { _, _ = TopLevelString(msg, "type") }))
	})
}

const benchMessage = `{"type":"slice","ts":1484291389.5,"data":{` +
	`"voltha.internal.abc":{"deferreds":12,"rss-mb":80.125,"cpu":3.25,"fds":140},` +
	`"voltha.internal.def":{"deferreds":7,"rss-mb":91.5,"cpu":1.875},` +
	`"voltha.adapter.ponsim_olt":{"rx_bytes":123456789,"tx_bytes":98765.432,"errors":0}}}`

func BenchmarkValid(b *testing.B) {
	msg := []byte(benchMessage)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if !Valid(msg) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkTopLevelString(b *testing.B) {
	msg := []byte(benchMessage)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if s, err := TopLevelString(msg, "type"); err != nil || s != "slice" {
			b.Fatal(s, err)
		}
	}
}

func BenchmarkObjectEachNested(b *testing.B) {
	msg := []byte(benchMessage)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	var sum float64
	leaf := func(_, v []byte, k Kind) error {
		if k == Number {
			f, err := ParseNumber(v)
			sum += f
			return err
		}
		return nil
	}
	for b.Loop() {
		err := ObjectEach(msg, func(k, v []byte, kind Kind) error {
			if string(k) != "data" {
				return nil
			}
			return ObjectEach(v, func(_, v []byte, _ Kind) error { return ObjectEach(v, leaf) })
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
