package decoders_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

func TestJSONTimestamp(t *testing.T) {
	tests := []struct {
		raw  string
		kind jsonscan.Kind
		unit string
		want float64
		ok   bool
	}{
		{"1480000000", jsonscan.Number, "s", 1480000000, true},
		{"1480000000.25", jsonscan.Number, "s", 1480000000.25, true},
		{"1480000000250", jsonscan.Number, "ms", 1480000000.25, true},
		{"1480000000.5e3", jsonscan.Number, "ms", 1480000000.5, true},
		{"1480000000250000", jsonscan.Number, "us", 1480000000.25, true},
		{"1480000000250000000", jsonscan.Number, "ns", 1480000000.25, true},
		{"-0", jsonscan.Number, "s", 0, true},
		{"-1", jsonscan.Number, "s", 0, false},
		{"-1000", jsonscan.Number, "ms", 0, false},
		{"1e999", jsonscan.Number, "s", 0, false},
		{`"1480000000"`, jsonscan.String, "s", 0, false},
		{`"2016-11-24T15:06:40Z"`, jsonscan.String, "rfc3339", 1480000000, true},
		{`"2016-11-24T16:06:40.25+01:00"`, jsonscan.String, "rfc3339", 1480000000.25, true},
		{`"2016-11-24 15:06:40"`, jsonscan.String, "rfc3339", 0, false},
		{`"1969-12-31T23:59:59Z"`, jsonscan.String, "rfc3339", 0, false},
		{"1480000000", jsonscan.Number, "rfc3339", 0, false},
		{"true", jsonscan.Bool, "s", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.unit+" "+tt.raw, func(t *testing.T) {
			got, err := decoders.JSONTimestamp([]byte(tt.raw), tt.kind, tt.unit)
			if !tt.ok {
				require.Equal(t, metric.ReasonBadTimestamp, metric.ReasonOf(err), "err: %v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
