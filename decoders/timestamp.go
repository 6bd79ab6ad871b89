package decoders

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Timestamp units.
const (
	UnitSeconds = "s"
	UnitMillis  = "ms"
	UnitMicros  = "us"
	UnitNanos   = "ns"
	UnitRFC3339 = "rfc3339"
)

// What a decoder does with a message (or entry) that has no timestamp.
const (
	MissingReject      = "reject"       // reject it as bad_timestamp
	MissingReceiveTime = "receive_time" // use the Kafka record's time, else the time now
)

// unitDivisor is how many of each numeric unit make a second.
var unitDivisor = map[string]float64{UnitSeconds: 1, UnitMillis: 1e3, UnitMicros: 1e6, UnitNanos: 1e9}

// checkUnit checks a unit setting.
func checkUnit(unit string) error {
	if _, ok := unitDivisor[unit]; ok || unit == UnitRFC3339 {
		return nil
	}
	return fmt.Errorf("must be one of s, ms, us, ns, rfc3339, got %q", unit)
}

// checkMissing checks a missing-timestamp setting.
func checkMissing(missing string) error {
	if missing == MissingReject || missing == MissingReceiveTime {
		return nil
	}
	return fmt.Errorf("must be %q or %q, got %q", MissingReject, MissingReceiveTime, missing)
}

// JSONTimestamp parses a timestamp in unit from its raw JSON value: a
// number for s, ms, us and ns, a string for rfc3339. The result is seconds
// since the epoch, finite and not negative, or a *metric.RejectError with
// reason bad_timestamp.
func JSONTimestamp(raw []byte, kind jsonscan.Kind, unit string) (float64, error) {
	if unit == UnitRFC3339 {
		if kind != jsonscan.String {
			return 0, metric.Rejectf(metric.ReasonBadTimestamp, "ts is %s, want an RFC 3339 string", kind)
		}
		var buf [64]byte
		s, err := jsonscan.AppendString(buf[:0], raw)
		if err != nil || len(s) > 40 {
			return 0, metric.Rejectf(metric.ReasonBadTimestamp, "ts %s is not RFC 3339", short(raw))
		}
		t, err := time.Parse(time.RFC3339Nano, string(s))
		if err != nil {
			return 0, metric.Rejectf(metric.ReasonBadTimestamp, "ts %s is not RFC 3339", short(raw))
		}
		return checkSeconds(float64(t.Unix())+float64(t.Nanosecond())/1e9, raw)
	}
	if kind != jsonscan.Number {
		return 0, metric.Rejectf(metric.ReasonBadTimestamp, "ts is %s, want number", kind)
	}
	return NumericTimestamp(raw, unit)
}

// NumericTimestamp parses the number token raw (JSON grammar) in unit. An
// integer is divided exactly, so nanoseconds keep their precision as far as
// a float64 of seconds can hold it.
func NumericTimestamp(raw []byte, unit string) (float64, error) {
	div := unitDivisor[unit]
	if div == 0 {
		div = 1
	}
	if div > 1 {
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			d := int64(div)
			return checkSeconds(float64(n/d)+float64(n%d)/div, raw)
		}
	}
	v, err := jsonscan.ParseNumber(raw)
	if err != nil {
		return 0, metric.Rejectf(metric.ReasonBadTimestamp, "ts %s is not a number", short(raw))
	}
	return checkSeconds(v/div, raw)
}

// checkSeconds refuses what Carbon could not store: non-finite and
// negative times.
func checkSeconds(ts float64, raw []byte) (float64, error) {
	if math.IsInf(ts, 0) || math.IsNaN(ts) || ts < 0 {
		return 0, metric.Rejectf(metric.ReasonBadTimestamp, "ts %s out of range", short(raw))
	}
	return ts + 0, nil // + 0 turns -0 into 0, which Carbon would print as "-0"
}

// missingTimestamp is the time of a message with no timestamp: its Kafka
// record's time (else now) when missing is receive_time, a rejection
// otherwise.
func missingTimestamp(msg *metric.Message, missing string) (float64, error) {
	if missing != MissingReceiveTime {
		return 0, metric.Rejectf(metric.ReasonBadTimestamp, "no ts member")
	}
	return receiveTime(msg), nil
}

// receiveTime is the Kafka record's time, or now when it has none.
func receiveTime(msg *metric.Message) float64 {
	t := msg.Timestamp
	if t.IsZero() || t.Unix() <= 0 {
		t = time.Now()
	}
	return float64(t.UnixNano()) / 1e9
}
