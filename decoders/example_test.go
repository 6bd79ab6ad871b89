package decoders_test

import (
	"errors"
	"fmt"
	"math"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

// This file is a whole decoder, as a new one would be written: a config
// with defaults and Validate, the decoder, and its registration. It reads
//
//	{"type":"temp","sensor":"s1","celsius":21.5,"ts":1480000000}
//
// into the sample <prefix>.s1.celsius.

// tempConfig is the decoder's config. The core fills it from the YAML
// sub-tree, strictly, by the mapstructure tags.
type tempConfig struct {
	Prefix string `mapstructure:"prefix"`
}

func (c tempConfig) Validate() error {
	if c.Prefix == "" {
		return errors.New("prefix must not be empty")
	}
	return nil
}

type temp struct{ prefix string }

var _ metric.Decoder = (*temp)(nil)

func init() {
	decoders.Register("temp", "temperature readings: <prefix>.<sensor>.celsius", newTemp)
}

func newTemp(decode metric.DecodeConfig, _ metric.Env) (metric.Decoder, error) {
	cfg := tempConfig{Prefix: "sensors"}
	if err := decode(&cfg); err != nil {
		return nil, fmt.Errorf("temp: config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("temp: %w", err)
	}
	return &temp{prefix: cfg.Prefix}, nil
}

func (d *temp) Decode(msg *metric.Message, out *metric.Result) error {
	// Keep the raw members; act only once the whole message is known to
	// be valid JSON.
	var sensor, celsius, ts []byte
	var celsiusKind, tsKind jsonscan.Kind
	err := jsonscan.ObjectEach(msg.Value, func(key, value []byte, kind jsonscan.Kind) error {
		switch string(key) {
		case "sensor":
			sensor = value
		case "celsius":
			celsius, celsiusKind = value, kind
		case "ts":
			ts, tsKind = value, kind
		}
		return nil
	})
	if err != nil {
		return metric.Rejectf(metric.ReasonInvalidJSON, "%v", err)
	}
	if tsKind != jsonscan.Number {
		return metric.Rejectf(metric.ReasonBadTimestamp, "ts missing or not a number")
	}
	t, _ := jsonscan.ParseNumber(ts) // the scanner has validated the token
	name, err := jsonscan.Unquote(sensor)
	if err != nil {
		return metric.Rejectf(metric.ReasonBadShape, "sensor missing or not a string")
	}

	path := d.prefix + "." + name + ".celsius"
	if celsiusKind != jsonscan.Number {
		out.Reject(path, metric.ReasonNotANumber) // this sample only
		return nil
	}
	v, _ := jsonscan.ParseNumber(celsius)
	if math.IsInf(v, 0) {
		out.Reject(path, metric.ReasonNotFinite)
		return nil
	}
	out.Samples = append(out.Samples, metric.Sample{Path: path, Time: t, Value: v})
	return nil
}

func Example() {
	factory, err := decoders.Lookup("temp")
	if err != nil {
		panic(err)
	}
	// The core passes a function that fills the config from the YAML
	// sub-tree; with none, the defaults stand.
	dec, err := factory(func(any) error { return nil }, metric.Env{Name: "temp"})
	if err != nil {
		panic(err)
	}

	var out metric.Result
	for _, value := range []string{
		`{"type":"temp","sensor":"s1","celsius":21.5,"ts":1480000000}`,
		`{"type":"temp","sensor":"s2","celsius":"warm","ts":1480000000}`,
		`{"type":"temp","sensor":"s3","celsius":19}`,
	} {
		if err := dec.Decode(&metric.Message{Value: []byte(value)}, &out); err != nil {
			fmt.Println("message rejected:", metric.ReasonOf(err))
		}
	}
	for _, s := range out.Samples {
		fmt.Printf("%s %v %.0f\n", s.Path, s.Value, s.Time)
	}
	for _, r := range out.Rejected {
		fmt.Println("sample rejected:", r.Path, r.Reason)
	}
	// Output:
	// message rejected: bad_timestamp
	// sensors.s1.celsius 21.5 1480000000
	// sample rejected: sensors.s2.celsius not_a_number
}
