package jsonscan

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// walk reads data with a Cursor the way a single-pass decoder does: into
// every object, Value over everything else. It returns the keys it met in
// order (nested ones after their parent's), and the first error.
func walk(s Scanner, data []byte) ([]string, error) {
	c := s.Cursor(data)
	if err := c.EnterObject(); err != nil {
		return nil, err
	}
	var keys []string
	for depth := 1; depth > 0; {
		key, _, ok, err := c.Next()
		if err != nil {
			return keys, err
		}
		if !ok {
			depth--
			continue
		}
		keys = append(keys, string(key))
		if c.Kind() == Object {
			if err := c.EnterObject(); err != nil {
				return keys, err
			}
			depth++
			continue
		}
		if _, _, err := c.Value(); err != nil {
			return keys, err
		}
	}
	return keys, c.End()
}

func TestCursor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		keys []string
		err  string
	}{
		{`{}`, nil, ""},
		{` { "a" : { "b" : [1, {"x":2}] , "c" : {} } , "d" : "e" } `, []string{"a", "b", "c", "d"}, ""},
		{`{"a":1,}`, []string{"a"}, "looking for object key"},
		{`{"a":1 "b":2}`, []string{"a"}, "after object member"},
		{`{"a" 1}`, nil, "after object key"},
		{`{"a":{"b":1}`, []string{"a", "b"}, "unexpected end"},
		{`{"a":1}x`, []string{"a"}, "after top-level value"},
		{`{"a":01}`, []string{"a"}, "after object member"},
		{`[1]`, nil, "want an object"},
		{``, nil, "unexpected end"},
		{`{"a":{"b":{"c":{"d":{}}}}}`, []string{"a", "b", "c", "d"}, "nesting too deep"}, // MaxDepth 4
		{`{"a":{"b":{"c":[{}]}}}`, []string{"a", "b", "c"}, "nesting too deep"},
	} {
		keys, err := walk(Scanner{MaxDepth: 4}, []byte(tc.in))
		require.Equal(t, tc.keys, keys, tc.in)
		if tc.err == "" {
			require.NoError(t, err, tc.in)
		} else {
			require.ErrorContains(t, err, tc.err, tc.in)
		}
	}
}

// FuzzCursor: a Cursor walk accepts exactly the objects Validate accepts,
// meets the same first error at the same offset, and sees the keys
// ObjectEach sees.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{
		`{"type":"slice","ts":1480000000,"data":{"voltha.internal.abc":{"deferreds":12,"rss-mb":80}}}`,
		`{"a":{"b":{"c":{"d":[{"e":1}]}}}}`, `{"a":1,}`, `{"a":"\u00e9","b":{}} `, `{}x`, `{"a":{"b":1}`,
	} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, data []byte, maxDepth int) {
		s := Scanner{MaxDepth: maxDepth % 8}
		keys, err := walk(s, data)
		verr := s.Validate(data)
		if verr == nil && kindOf(data) != Object {
			require.Error(t, err)
			return
		}
		if verr != nil {
			require.Error(t, err, "the cursor took an invalid document")
			var want, got *Error
			require.True(t, errors.As(verr, &want))
			if errors.As(err, &got) && !errors.Is(err, ErrKind) && got.Msg != "want an object" {
				require.Equal(t, want.Offset, got.Offset, "validate: %v, cursor: %v", verr, err)
				require.Equal(t, errors.Is(verr, ErrTooDeep), errors.Is(err, ErrTooDeep), "validate: %v, cursor: %v", verr, err)
			}
			return
		}
		require.NoError(t, err)
		want := []string{}
		var each func(obj []byte)
		each = func(obj []byte) {
			require.NoError(t, s.ObjectEach(obj, func(key, value []byte, kind Kind) error {
				want = append(want, string(key))
				if kind == Object {
					each(value)
				}
				return nil
			}))
		}
		each(data)
		got := make([]string, len(keys))
		for i, k := range keys {
			got[i] = string(appendUnescaped(nil, []byte(k)))
		}
		require.Equal(t, want, got)
	})
}

// checkFloat: on the document {"a":<num>,"b":1}, Float gives what Value
// and ParseNumber give together, leaves the cursor where Value would, and
// refuses what they refuse.
func checkFloat(t *testing.T, num string) {
	doc := []byte(`{"a":` + num + `,"b":1}`)
	c1, c2 := Scanner{}.Cursor(doc), Scanner{}.Cursor(doc)
	for _, c := range []*Cursor{&c1, &c2} {
		require.NoError(t, c.EnterObject())
		if _, _, _, err := c.Next(); err != nil {
			return // num broke the key or the colon: nothing to compare
		}
	}
	f, ferr := c1.Float()
	raw, kind, verr := c2.Value()
	switch {
	case verr != nil:
		require.Error(t, ferr, num)
		return
	case kind != Number:
		require.ErrorIs(t, ferr, ErrKind, num)
		return
	}
	want, perr := ParseNumber(raw)
	require.NoError(t, perr, num)
	require.NoError(t, ferr, num)
	require.Equal(t, math.Float64bits(want), math.Float64bits(f), num)
	// Both cursors go on alike: the next member, or the same error.
	k1, _, ok1, e1 := c1.Next()
	k2, _, ok2, e2 := c2.Next()
	require.Equal(t, e2, e1, num)
	require.Equal(t, ok2, ok1, num)
	require.Equal(t, k2, k1, num)
}

func TestCursorFloat(t *testing.T) {
	for _, num := range []string{"0", "-0", "12", "-12.5", "0.001", "123456789012345", "1234567890123456", "1234567890123456789",
		"0.000000000000001", "9.99999999999999", "1.5e3", "1E-2", "-0.0", "1e999", "01", "1.", "-", "1.5e", "--1", "2.5.1", "3-",
		"true", `"1"`, "null", "{}", "4 ", " 5"} {
		checkFloat(t, num)
	}
}

func FuzzCursorFloat(f *testing.F) {
	for _, s := range []string{"0", "-12.5", "1e5", "01", "123456789012345.5", "1.", "true"} {
		f.Add(s)
	}
	f.Fuzz(checkFloat)
}
