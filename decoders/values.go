package decoders

import (
	"bytes"
	"math"

	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

// ReasonNull rejects a sample whose value is JSON null (or Python None): the
// producer had no reading, which is not the same as a reading of zero.
const ReasonNull = "null_value"

// ValueConfig says which values, besides numbers, count as numbers. It is
// the `values:` key of every decoder.
type ValueConfig struct {
	// NumericStrings accepts a string that holds a number ("12.5"), as
	// Carbon itself does: it calls float() on what it receives.
	NumericStrings bool `mapstructure:"numeric_strings"`
	// Booleans accepts true as 1 and false as 0.
	Booleans bool `mapstructure:"booleans"`
}

// DefaultValueConfig accepts numeric strings and booleans.
func DefaultValueConfig() ValueConfig { return ValueConfig{NumericStrings: true, Booleans: true} }

// JSONValue turns the raw JSON value of a metric into a sample value, or
// says why it is not one with a reason token: not_a_number (objects, arrays,
// other strings, refused booleans), null_value, or not_finite (1e999, "NaN",
// "Inf"). It does not allocate.
func (c ValueConfig) JSONValue(raw []byte, kind jsonscan.Kind) (float64, string) {
	switch kind {
	case jsonscan.Number:
		v, err := jsonscan.ParseNumber(raw)
		if err != nil {
			return 0, metric.ReasonNotANumber
		}
		return finiteValue(v)
	case jsonscan.String:
		if !c.NumericStrings || len(raw) < 2 {
			return 0, metric.ReasonNotANumber
		}
		text := raw[1 : len(raw)-1]
		if bytes.IndexByte(text, '\\') >= 0 {
			var buf [64]byte
			s, err := jsonscan.AppendString(buf[:0], raw)
			if err != nil {
				return 0, metric.ReasonNotANumber
			}
			return NumberText(s)
		}
		return NumberText(text)
	case jsonscan.Bool:
		if !c.Booleans {
			return 0, metric.ReasonNotANumber
		}
		if len(raw) > 0 && raw[0] == 't' {
			return 1, ""
		}
		return 0, ""
	case jsonscan.Null:
		return 0, ReasonNull
	}
	return 0, metric.ReasonNotANumber
}

// BoolValue is the value of a boolean under c: 0 or 1, or not_a_number
// when booleans are refused.
func (c ValueConfig) BoolValue(b bool) (float64, string) {
	switch {
	case !c.Booleans:
		return 0, metric.ReasonNotANumber
	case b:
		return 1, ""
	}
	return 0, ""
}

// NumberText parses the text of a number as Carbon's plaintext protocol
// carries it and as numeric strings hold it: JSON's grammar, plus what
// Python's float() and go-carbon also take in decimal ("+1", ".5", "1.",
// "007"). NaN and infinities, in any spelling, are not_finite; anything
// else is not_a_number. It does not allocate.
func NumberText(b []byte) (float64, string) {
	if len(b) == 0 || len(b) > 64 {
		return 0, metric.ReasonNotANumber
	}
	if isNonFinite(b) {
		return 0, metric.ReasonNotFinite
	}
	// Rewrite into JSON's grammar on the stack and parse that.
	var buf [80]byte
	n := buf[:0]
	rest := b
	switch rest[0] {
	case '-':
		n = append(n, '-')
		rest = rest[1:]
	case '+':
		rest = rest[1:]
	}
	for len(rest) > 1 && rest[0] == '0' && rest[1] >= '0' && rest[1] <= '9' {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] == '.' {
		n = append(n, '0')
	}
	for k, c := range rest {
		n = append(n, c)
		if c == '.' && (k+1 == len(rest) || rest[k+1] < '0' || rest[k+1] > '9') {
			n = append(n, '0')
		}
	}
	v, err := jsonscan.ParseNumber(n)
	if err != nil {
		return 0, metric.ReasonNotANumber
	}
	return finiteValue(v)
}

// isNonFinite reports Python's and Go's spellings of NaN and infinity.
func isNonFinite(b []byte) bool {
	if b[0] == '+' || b[0] == '-' {
		b = b[1:]
	}
	var lower [8]byte
	if len(b) > len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	switch string(lower[:len(b)]) {
	case "nan", "inf", "infinity":
		return true
	}
	return false
}

func finiteValue(v float64) (float64, string) {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, metric.ReasonNotFinite
	}
	return v, ""
}
