package jsonscan

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/router/jsonscan/jsonref"
)

// encodingJSONMaxDepth is encoding/json's own nesting limit; with the same
// limit, the two scanners must agree on every input.
const encodingJSONMaxDepth = 10000

// FuzzScan checks jsonscan against encoding/json, the reference:
//   - validity: with encoding/json's depth limit, Validate accepts exactly
//     what json.Valid accepts, except strings of invalid UTF-8, which
//     json.Valid lets through and jsonscan refuses on purpose;
//   - content: when a document is valid, ObjectEach (recursively, with
//     ArrayEach), Lookup, TopLevelString, Unquote and ParseNumber return
//     what encoding/json decodes, member order and duplicates included.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"type":"slice","ts":1480000000,"data":{"voltha.internal.abc":{"deferreds":12,"rss-mb":80}}}`,
		`{"a\u002eb":1,"a":2,"a":[true,false,null,{"x":"y"}]}`,
		`{"s":"\ud83d\ude00\ud800\u0041\"\\\/\b\f\n\r\t","n":-0.5e-3}`,
		`[1,2.5,-0,1e999,1E-999,"",{}]`,
		` {"o" : { "p" : [ ] } } `,
		"\"\xff\"",
		"{\"a\":\"\u00e9\u2603\U0001F600\"}",
		`{"a":1,}`, `[1,]`, `01`, `1.`, `-`, `{"a" 1}`, `tru`, `"\u12"`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		wide := Scanner{MaxDepth: encodingJSONMaxDepth}
		errWide := wide.Validate(data)
		want := json.Valid(data) && utf8.Valid(data)
		require.Equal(t, want, errWide == nil, "jsonscan: %v", errWide)

		err := Scanner{}.Validate(data)
		if err != nil {
			if errWide == nil {
				require.ErrorIs(t, err, ErrTooDeep)
			}
			// Every entry point refuses what Validate refuses.
			require.Error(t, Scanner{}.ObjectEach(data, nop))
			require.Error(t, Scanner{}.ArrayEach(data, func([]byte, Kind) error { return nil }))
			_, _, lerr := Lookup(data, "a")
			require.Error(t, lerr)
			require.NotErrorIs(t, lerr, ErrNotFound)
			return
		}
		require.NoError(t, errWide)

		ref, rerr := jsonref.Decode(data)
		require.NoError(t, rerr)
		trimmed := bytes.Trim(data, " \t\r\n")
		checkValue(t, trimmed, kindOf(trimmed), ref)

		obj, isObj := ref.(jsonref.Object)
		if !isObj {
			require.ErrorIs(t, ObjectEach(data, nop), ErrKind)
			_, _, lerr := Lookup(data, "a")
			require.ErrorIs(t, lerr, ErrKind)
			return
		}
		// Lookup finds the first member of each key.
		seen := map[string]bool{}
		for _, m := range obj {
			if seen[m.Key] {
				continue
			}
			seen[m.Key] = true
			v, kind, err := Lookup(data, m.Key)
			require.NoError(t, err)
			checkValue(t, v, kind, m.Value)
			s, err := TopLevelString(data, m.Key)
			if want, ok := m.Value.(string); ok {
				require.NoError(t, err)
				require.Equal(t, want, s)
			} else {
				require.ErrorIs(t, err, ErrKind)
			}
		}
		_, _, err = Lookup(data, "\x00absent")
		require.ErrorIs(t, err, ErrNotFound)
	})
}

// checkValue asserts that the raw value and kind jsonscan returned decode
// to want, encoding/json's view of the same bytes.
func checkValue(t *testing.T, raw []byte, kind Kind, want any) {
	t.Helper()
	switch w := want.(type) {
	case jsonref.Object:
		require.Equal(t, Object, kind)
		i := 0
		require.NoError(t, ObjectEach(raw, func(key, value []byte, kind Kind) error {
			require.Less(t, i, len(w), "more members than encoding/json sees")
			require.Equal(t, w[i].Key, string(key))
			checkValue(t, value, kind, w[i].Value)
			i++
			return nil
		}))
		require.Equal(t, len(w), i)
	case []any:
		require.Equal(t, Array, kind)
		i := 0
		require.NoError(t, ArrayEach(raw, func(value []byte, kind Kind) error {
			require.Less(t, i, len(w), "more elements than encoding/json sees")
			checkValue(t, value, kind, w[i])
			i++
			return nil
		}))
		require.Equal(t, len(w), i)
	case string:
		require.Equal(t, String, kind)
		s, err := Unquote(raw)
		require.NoError(t, err)
		require.Equal(t, w, s)
	case json.Number:
		require.Equal(t, Number, kind)
		require.Equal(t, string(w), string(raw))
		got, err := ParseNumber(raw)
		require.NoError(t, err)
		ref, rerr := strconv.ParseFloat(string(w), 64)
		if rerr != nil { // out of range: encoding/json refuses it as a float64
			require.True(t, math.IsInf(got, 0), "got %v", got)
			require.True(t, math.IsInf(ref, 0))
		}
		require.Equal(t, math.Float64bits(ref), math.Float64bits(got))
	case bool:
		require.Equal(t, Bool, kind)
		require.Equal(t, strconv.FormatBool(w), string(raw))
	case nil:
		require.Equal(t, Null, kind)
		require.Equal(t, "null", string(raw))
	default:
		t.Fatalf("unexpected reference value %T", want)
	}
}

// FuzzParseNumber checks ParseNumber, fast path included, against the JSON
// grammar (json.Valid on the lone token) and strconv.ParseFloat, bit for bit.
func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{
		"0", "-0", "12", "80.125", "-0.000001", "123456789012345", "1234567890123456",
		"0.123456789012345", "9007199254740993", "1e999", "1E-999", "01", "1.", "-", ".5", "+1", "1_0", " 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseNumber([]byte(s))
		isNumber := s != "" && (s[0] == '-' || isDigit(s[0])) && json.Valid([]byte(s)) && strings.Trim(s, " \t\r\n") == s
		if !isNumber {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		want, _ := strconv.ParseFloat(s, 64)
		require.Equal(t, math.Float64bits(want), math.Float64bits(got), "ParseNumber(%q) = %v, want %v", s, got, want)
	})
}
