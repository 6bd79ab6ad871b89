package decoders_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

func TestJSONValue(t *testing.T) {
	all := decoders.DefaultValueConfig()
	none := decoders.ValueConfig{}
	tests := []struct {
		raw    string
		kind   jsonscan.Kind
		policy decoders.ValueConfig
		want   float64
		reason string
	}{
		{`12`, jsonscan.Number, all, 12, ""},
		{`-2.5e3`, jsonscan.Number, all, -2500, ""},
		{`1e999`, jsonscan.Number, all, 0, metric.ReasonNotFinite},
		{`1e-999`, jsonscan.Number, all, 0, ""},
		{`"12.5"`, jsonscan.String, all, 12.5, ""},
		{`"\u0031"`, jsonscan.String, all, 1, ""},
		{`"+1"`, jsonscan.String, all, 1, ""},
		{`".5"`, jsonscan.String, all, 0.5, ""},
		{`"12.5"`, jsonscan.String, none, 0, metric.ReasonNotANumber},
		{`"NaN"`, jsonscan.String, all, 0, metric.ReasonNotFinite},
		{`"-Inf"`, jsonscan.String, all, 0, metric.ReasonNotFinite},
		{`"Infinity"`, jsonscan.String, all, 0, metric.ReasonNotFinite},
		{`"1e999"`, jsonscan.String, all, 0, metric.ReasonNotFinite},
		{`"twelve"`, jsonscan.String, all, 0, metric.ReasonNotANumber},
		{`""`, jsonscan.String, all, 0, metric.ReasonNotANumber},
		{`" 1"`, jsonscan.String, all, 1, ""}, // float(" 1") is 1.0
		{`"."`, jsonscan.String, all, 0, metric.ReasonNotANumber},
		{`"-."`, jsonscan.String, all, 0, metric.ReasonNotANumber},
		{`"+-1"`, jsonscan.String, all, 0, metric.ReasonNotANumber},
		{`".e5"`, jsonscan.String, all, 0, metric.ReasonNotANumber},
		{`true`, jsonscan.Bool, all, 1, ""},
		{`false`, jsonscan.Bool, all, 0, ""},
		{`true`, jsonscan.Bool, none, 0, metric.ReasonNotANumber},
		{`null`, jsonscan.Null, all, 0, decoders.ReasonNull},
		{`{"a":1}`, jsonscan.Object, all, 0, metric.ReasonNotANumber},
		{`[1]`, jsonscan.Array, all, 0, metric.ReasonNotANumber},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			v, reason := tt.policy.JSONValue([]byte(tt.raw), tt.kind)
			require.Equal(t, tt.reason, reason)
			require.Equal(t, tt.want, v)
		})
	}
}

func TestNumberText(t *testing.T) {
	for in, want := range map[string]string{
		"1": "", "1.5": "", "-0": "", "1e3": "", "+1": "", ".5": "", "1.": "", "1_0": "", "1 ": "", "١٢": "",
		"": metric.ReasonNotANumber, "x": metric.ReasonNotANumber, "1__0": metric.ReasonNotANumber,
		".": metric.ReasonNotANumber, "-.": metric.ReasonNotANumber, "+-1": metric.ReasonNotANumber, ".e5": metric.ReasonNotANumber,
		"nan": metric.ReasonNotFinite, "NaN": metric.ReasonNotFinite, "inf": metric.ReasonNotFinite, "-Infinity": metric.ReasonNotFinite, "1e400": metric.ReasonNotFinite,
	} {
		_, reason := decoders.NumberText([]byte(in))
		require.Equal(t, want, reason, "%q", in)
	}
}

func TestValueAllocs(t *testing.T) {
	c := decoders.DefaultValueConfig()
	for _, raw := range []string{`"12.5"`, `"\u0031\u0032"`} {
		require.Zero(t, testing.AllocsPerRun(100, func() { _, _ = c.JSONValue([]byte(raw), jsonscan.String) }), raw)
	}
	for _, raw := range []string{"+1.5", "1.5", ".5", "1."} {
		require.Zero(t, testing.AllocsPerRun(100, func() { _, _ = decoders.NumberText([]byte(raw)) }), raw)
	}
}
