// Package kpi builds and publishes KPI messages in the slice format that
// shovel's slice decoder reads and the Voltha KPI shovel read before it:
//
//	{"type":"slice","ts":1480000000,"data":{"voltha.internal.abc":{"deferreds":12,"rss-mb":80}}}
//
// It is pure Go: a message builder (Slice), a collector of this process's
// and host's diagnostics (Process) and a Publisher that sends them every
// interval through a Sender. The Kafka Sender lives in router/kafka, the
// one package that needs cgo.
package kpi

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Type is the "type" every slice message carries; shovel's default route
// matches on it.
const Type = "slice"

// Slice is one KPI message: metrics grouped by object path, all taken at
// one time. Objects and metrics are written in the order they were first
// added; adding a metric again replaces its value. The zero value is an
// empty message at the zero time, which Validate refuses: use NewSlice, or
// Reset to reuse one.
type Slice struct {
	ts      time.Time
	objects []object
}

type object struct {
	path    string
	metrics []Metric
}

// Metric is one named value of an object.
type Metric struct {
	Name  string
	Value float64
}

// NewSlice returns an empty message taken at ts.
func NewSlice(ts time.Time) *Slice { return &Slice{ts: ts} }

// Time returns the time the message's samples were taken.
func (s *Slice) Time() time.Time { return s.ts }

// Add sets object's metric to value and returns s, so that calls chain.
// Names are checked when the message is encoded.
func (s *Slice) Add(objectPath, name string, value float64) *Slice {
	o := s.object(objectPath)
	for i := range o.metrics {
		if o.metrics[i].Name == name {
			o.metrics[i].Value = value
			return s
		}
	}
	o.metrics = append(o.metrics, Metric{Name: name, Value: value})
	return s
}

func (s *Slice) object(path string) *object {
	for i := range s.objects {
		if s.objects[i].path == path {
			return &s.objects[i]
		}
	}
	if n := len(s.objects); n < cap(s.objects) {
		// Reuse the metrics memory of an object from before Reset.
		s.objects = s.objects[:n+1]
		o := &s.objects[n]
		o.path, o.metrics = path, o.metrics[:0]
		return o
	}
	s.objects = append(s.objects, object{path: path})
	return &s.objects[len(s.objects)-1]
}

// Len returns the number of samples the message carries.
func (s *Slice) Len() int {
	n := 0
	for _, o := range s.objects {
		n += len(o.metrics)
	}
	return n
}

// Samples returns the samples shovel's slice decoder makes of the message:
// "<object path>.<metric>" at the message's time.
func (s *Slice) Samples() []metric.Sample {
	out := make([]metric.Sample, 0, s.Len())
	ts := seconds(s.ts)
	for _, o := range s.objects {
		for _, m := range o.metrics {
			out = append(out, metric.Sample{Path: o.path + "." + m.Name, Time: ts, Value: m.Value})
		}
	}
	return out
}

// Reset empties s for reuse at a new time, keeping its memory.
func (s *Slice) Reset(ts time.Time) {
	s.ts = ts
	s.objects = s.objects[:0]
}

// Validate reports every sample that shovel would drop: a path (object
// path + "." + metric) that Carbon cannot take as it is, or a value that
// is not a finite number (JSON has no NaN or Inf).
func (s *Slice) Validate() error {
	var errs []error
	if s.ts.IsZero() || s.ts.Unix() < 0 {
		errs = append(errs, fmt.Errorf("kpi: ts %v is not a time after 1970", s.ts))
	}
	if len(s.objects) == 0 {
		errs = append(errs, errors.New("kpi: message has no metrics"))
	}
	for _, o := range s.objects {
		for _, m := range o.metrics {
			// Two valid paths joined by one dot make a valid path, so
			// the joined one is built only for the error message.
			switch {
			case !metric.ValidPath(o.path) || !metric.ValidPath(m.Name) || len(o.path)+1+len(m.Name) > metric.MaxNameLen:
				errs = append(errs, fmt.Errorf("kpi: %q is not a valid metric path (no spaces, control characters or empty segments)", o.path+"."+m.Name))
			case math.IsNaN(m.Value) || math.IsInf(m.Value, 0):
				errs = append(errs, fmt.Errorf("kpi: %s.%s: value %v is not a finite number", o.path, m.Name, m.Value))
			}
		}
	}
	return errors.Join(errs...)
}

// AppendJSON validates s and appends its JSON encoding to dst.
func (s *Slice) AppendJSON(dst []byte) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return dst, err
	}
	dst = append(dst, `{"type":"`+Type+`","ts":`...)
	dst = appendNumber(dst, seconds(s.ts))
	dst = append(dst, `,"data":{`...)
	for i, o := range s.objects {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, o.path)
		dst = append(dst, ":{"...)
		for j, m := range o.metrics {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, m.Name)
			dst = append(dst, ':')
			dst = appendNumber(dst, m.Value)
		}
		dst = append(dst, '}')
	}
	return append(dst, "}}"...), nil
}

// MarshalJSON implements json.Marshaler.
func (s *Slice) MarshalJSON() ([]byte, error) { return s.AppendJSON(nil) }

// seconds is t as Unix seconds, with milliseconds as the fraction when t
// has any (Carbon floors it; the original publishers sent time.time()).
func seconds(t time.Time) float64 {
	ms := t.UnixMilli()
	if ms%1000 == 0 {
		return float64(ms / 1000)
	}
	return float64(ms) / 1000
}

// appendNumber writes f as encoding/json does: the shortest decimal that
// reads back exactly, in exponent form only for very small or large values.
func appendNumber(dst []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(dst, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// appendString appends s as a JSON string. Validate has already refused
// control characters and invalid UTF-8 in names, so only quotes and
// backslashes need escaping; the rest is kept for safety.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, '"')
}

// Segment makes s usable as one segment of a metric path: dots, spaces
// and control characters become "_". A host name "db1.example.com" gives
// "db1_example_com", so the default prefix "shovel.<host>" has exactly two
// segments.
func Segment(s string) string {
	s = strings.ToValidUTF8(s, "_")
	var b strings.Builder
	for _, r := range s {
		if r <= ' ' || r == '.' || r == 0x7f {
			r = '_'
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
