package decoders

import (
	"errors"
	"fmt"
	"math"

	"github.com/shovel-metrics/shovel/decoders/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

// ReasonTooDeep rejects a message nested deeper than the decoder's
// max_depth: no metrics message needs it, and a hostile one uses it to
// make parsers work.
const ReasonTooDeep = "too_deep"

func init() {
	Register("slice", "Voltha KPI shovel messages: data.<object path>.<metric> = number, at the top-level ts", newSlice)
}

// SliceConfig configures the slice decoder.
type SliceConfig struct {
	// MaxMessageBytes is the largest message decoded; a larger one is
	// rejected as too_large before any parsing.
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	// MaxDepth is the deepest nesting of objects and arrays accepted; the
	// message object is level 1, so the data shape needs 3.
	MaxDepth int `mapstructure:"max_depth"`
}

// Bounds of SliceConfig.MaxDepth: below 3 no slice message fits, and a
// limit above encoding/json's own (10 000) would protect nothing.
const (
	sliceMinDepth = 3
	sliceMaxDepth = 10000
)

// DefaultSliceConfig returns the slice decoder's defaults.
func DefaultSliceConfig() SliceConfig {
	return SliceConfig{MaxMessageBytes: 1 << 20, MaxDepth: 32}
}

// Validate checks the config, naming the offending key.
func (c SliceConfig) Validate() error {
	if c.MaxMessageBytes <= 0 {
		return fmt.Errorf("max_message_bytes must be positive, got %d", c.MaxMessageBytes)
	}
	if c.MaxDepth < sliceMinDepth || c.MaxDepth > sliceMaxDepth {
		return fmt.Errorf("max_depth must be between %d and %d, got %d", sliceMinDepth, sliceMaxDepth, c.MaxDepth)
	}
	return nil
}

// newSlice is the slice decoder's Factory.
func newSlice(decode metric.DecodeConfig, _ metric.Env) (metric.Decoder, error) {
	cfg := DefaultSliceConfig()
	if decode != nil {
		if err := decode(&cfg); err != nil {
			return nil, fmt.Errorf("slice: config: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("slice: %w", err)
	}
	return &slice{cfg: cfg, scan: jsonscan.Scanner{MaxDepth: cfg.MaxDepth}}, nil
}

// slice decodes the messages of the Voltha KPI shovel:
//
//	{"type":"slice","ts":1480000000,"data":{"voltha.internal.abc":{"deferreds":12,"rss-mb":80}}}
//
// gives voltha.internal.abc.deferreds = 12 and voltha.internal.abc.rss-mb =
// 80, both at the message's ts. Samples come out in document order. Paths
// are joined as found, not sanitised: the router checks every path.
//
// The decoder holds only its immutable config, so one value serves all
// workers; the scratch it needs lives on each call's stack.
type slice struct {
	cfg  SliceConfig
	scan jsonscan.Scanner
}

var _ metric.Decoder = (*slice)(nil)

// sliceMessage is what the first pass keeps of a message's top level: the
// raw members the decoder needs, first occurrence of each (as jsonscan's
// Lookup, and so the router's type match, also take the first). The
// "prefixes" and "slice_data" shapes to come add their members here.
type sliceMessage struct {
	ts, data         []byte
	tsKind, dataKind jsonscan.Kind
}

func (d *slice) Decode(msg *metric.Message, out *metric.Result) error {
	if len(msg.Value) > d.cfg.MaxMessageBytes {
		return metric.Rejectf(metric.ReasonTooLarge, "%d bytes, limit %d", len(msg.Value), d.cfg.MaxMessageBytes)
	}

	// First pass: validate the whole message and pick out its members, so
	// that nothing is emitted from a message that later proves broken.
	var m sliceMessage
	err := d.scan.ObjectEach(msg.Value, func(key, value []byte, kind jsonscan.Kind) error {
		switch string(key) {
		case "ts":
			if m.ts == nil {
				m.ts, m.tsKind = value, kind
			}
		case "data":
			if m.data == nil {
				m.data, m.dataKind = value, kind
			}
		}
		return nil
	})
	if err != nil {
		return d.scanReject(err)
	}

	ts, err := sliceTimestamp(m.ts, m.tsKind)
	if err != nil {
		return err
	}
	if m.data == nil {
		return metric.Rejectf(metric.ReasonBadShape, "no data member")
	}
	if m.dataKind != jsonscan.Object {
		return metric.Rejectf(metric.ReasonBadShape, "data is %s, want object", m.dataKind)
	}

	// Second pass: the data shape. A bad shape met half-way rejects the
	// whole message, so what it already appended is taken back.
	nSamples, nRejected := len(out.Samples), len(out.Rejected)
	err = d.scan.ObjectEach(m.data, func(objPath, metrics []byte, kind jsonscan.Kind) error {
		if kind != jsonscan.Object {
			return metric.Rejectf(metric.ReasonBadShape, "data[%s] is %s, want object", short(objPath), kind)
		}
		return d.appendMetrics(out, objPath, metrics, ts)
	})
	if err != nil {
		out.Samples, out.Rejected = out.Samples[:nSamples], out.Rejected[:nRejected]
		return d.scanReject(err)
	}
	return nil
}

// appendMetrics appends one sample per member of the object metrics, named
// prefix.<member>. It is the common end of every shape the decoder knows
// (and of those to come: prefixes.<p>.metrics and slice_data[].metrics).
func (d *slice) appendMetrics(out *metric.Result, prefix, metrics []byte, ts float64) error {
	// Each path is built here and copied once into its string: one
	// allocation per sample. The buffer stays on the stack unless a path
	// outgrows it.
	var buf [256]byte
	path := append(append(buf[:0], prefix...), '.')
	n := len(path)
	return d.scan.ObjectEach(metrics, func(name, value []byte, kind jsonscan.Kind) error {
		path = append(path[:n], name...)
		if kind != jsonscan.Number {
			out.Reject(string(path), metric.ReasonNotANumber)
			return nil
		}
		v, err := jsonscan.ParseNumber(value)
		switch {
		case err != nil: // cannot happen: the scanner validated the token
			out.Reject(string(path), metric.ReasonNotANumber)
		case math.IsInf(v, 0):
			out.Reject(string(path), metric.ReasonNotFinite)
		default:
			out.Samples = append(out.Samples, metric.Sample{Path: string(path), Time: ts, Value: v})
		}
		return nil
	})
}

// sliceTimestamp checks and parses the top-level ts: seconds, integral or
// not, finite and not negative.
func sliceTimestamp(raw []byte, kind jsonscan.Kind) (float64, error) {
	if raw == nil {
		return 0, metric.Rejectf(metric.ReasonBadTimestamp, "no ts member")
	}
	if kind != jsonscan.Number {
		return 0, metric.Rejectf(metric.ReasonBadTimestamp, "ts is %s, want number", kind)
	}
	ts, err := jsonscan.ParseNumber(raw)
	if err != nil || math.IsInf(ts, 0) || math.IsNaN(ts) || ts < 0 {
		return 0, metric.Rejectf(metric.ReasonBadTimestamp, "ts %s out of range", short(raw))
	}
	return ts + 0, nil // + 0 turns -0 into 0, which Carbon would print as "-0"
}

// scanReject turns a scanner error into the whole-message rejection, and
// passes a rejection from the decoder's own callbacks through.
func (d *slice) scanReject(err error) error {
	var (
		re *metric.RejectError
		se *jsonscan.Error
	)
	switch {
	case errors.As(err, &re):
		return err
	case errors.Is(err, jsonscan.ErrTooDeep):
		return metric.Rejectf(ReasonTooDeep, "more than %d levels", d.cfg.MaxDepth)
	case errors.Is(err, jsonscan.ErrKind):
		return metric.Rejectf(metric.ReasonBadShape, "message is not a JSON object")
	case errors.As(err, &se):
		return metric.Rejectf(metric.ReasonInvalidJSON, "offset %d: %s", se.Offset, se.Msg)
	default:
		return metric.Rejectf(metric.ReasonInvalidJSON, "%v", err)
	}
}

// short quotes b for a log line, cut to a length that keeps one hostile
// key from flooding the log.
func short(b []byte) string {
	const max = 64
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}
