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
// carries it and as numeric strings hold it: exactly what Python's
// float(), which Carbon applies, accepts (see parsePyFloat: "1.", ".5",
// "+1", "1_000", " 7 " are numbers; ".", "-.", "+-1", ".e5" are not). NaN
// and infinities, in any spelling, and numbers too large for a float64
// are not_finite; anything else is not_a_number.
func NumberText(b []byte) (float64, string) {
	v, ok := parsePyFloat(b)
	if !ok {
		return 0, metric.ReasonNotANumber
	}
	return finiteValue(v)
}

func finiteValue(v float64) (float64, string) {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, metric.ReasonNotFinite
	}
	return v, ""
}
