package decoders

import (
	"bytes"
	"fmt"

	"github.com/shovel-metrics/shovel/router/metric"
)

// ReasonBadLine rejects a plaintext line that is not "path value timestamp".
const ReasonBadLine = "bad_line"

func init() {
	Register("carbon-plaintext", `Carbon plaintext in Kafka (go-carbon's "plain"): "path value timestamp" lines`, newPlaintext)
}

// PlaintextConfig configures the carbon-plaintext decoder.
type PlaintextConfig struct {
	// MaxMessageBytes is the largest message decoded; a larger one is
	// rejected as too_large before any parsing.
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	// MaxLines is the most lines one message may hold.
	MaxLines int `mapstructure:"max_lines"`
	// MissingTimestamp is what a line of two fields ("path value") gets:
	// "reject" or "receive_time". A timestamp of -1 always means the
	// receive time, as in go-carbon.
	MissingTimestamp string `mapstructure:"missing_timestamp"`
	// Sanitize configures the path sanitiser.
	Sanitize PathConfig `mapstructure:"sanitize"`
}

// DefaultPlaintextConfig returns the carbon-plaintext decoder's defaults.
func DefaultPlaintextConfig() PlaintextConfig {
	return PlaintextConfig{MaxMessageBytes: 1 << 20, MaxLines: 100000, MissingTimestamp: MissingReject, Sanitize: DefaultPathConfig()}
}

// Validate checks the config, naming the offending key.
func (c PlaintextConfig) Validate() error {
	if c.MaxMessageBytes <= 0 {
		return fmt.Errorf("max_message_bytes must be positive, got %d", c.MaxMessageBytes)
	}
	if c.MaxLines <= 0 {
		return fmt.Errorf("max_lines must be positive, got %d", c.MaxLines)
	}
	if err := checkMissing(c.MissingTimestamp); err != nil {
		return fmt.Errorf("missing_timestamp: %w", err)
	}
	return c.Sanitize.Validate()
}

func newPlaintext(decode metric.DecodeConfig, _ metric.Env) (metric.Decoder, error) {
	cfg := DefaultPlaintextConfig()
	if decode != nil {
		if err := decode(&cfg); err != nil {
			return nil, fmt.Errorf("carbon-plaintext: config: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("carbon-plaintext: %w", err)
	}
	return &plaintext{cfg: cfg, paths: NewPathSanitizer(cfg.Sanitize)}, nil
}

// plaintext decodes Carbon's line protocol carried in a Kafka message:
//
//	voltha.olt1.rx_bytes 1234 1480000000
//	voltha.olt1.tx_bytes 5678.5 1480000000
//
// Lines end in \n (a \r before it is dropped); fields are separated by
// spaces or tabs; empty lines are skipped. A line that does not parse is
// rejected on its own with a reason, and the other lines go through.
type plaintext struct {
	cfg   PlaintextConfig
	paths *PathSanitizer
}

// PathsChecked is true: every path comes out of the sanitiser and its
// Check, which guarantee metric.ValidPath (the fuzz test asserts it).
func (d *plaintext) PathsChecked() bool { return true }

// MaxMessageBytes is max_message_bytes (metric.MessageLimit).
func (d *plaintext) MaxMessageBytes() int { return d.cfg.MaxMessageBytes }

var _ metric.Decoder = (*plaintext)(nil)

func (d *plaintext) Decode(msg *metric.Message, out *metric.Result) error {
	nSamples, nRejected := len(out.Samples), len(out.Rejected)
	if err := d.decode(msg, out); err != nil {
		out.Samples, out.Rejected = out.Samples[:nSamples], out.Rejected[:nRejected]
		return err
	}
	return nil
}

func (d *plaintext) decode(msg *metric.Message, out *metric.Result) error {
	data := msg.Value
	if len(data) > d.cfg.MaxMessageBytes {
		return metric.Rejectf(metric.ReasonTooLarge, "%d bytes, limit %d", len(data), d.cfg.MaxMessageBytes)
	}
	if n := bytes.Count(data, []byte{'\n'}); n > d.cfg.MaxLines {
		return metric.Rejectf(metric.ReasonTooLarge, "%d lines, limit %d", n, d.cfg.MaxLines)
	}
	now := -1.0 // the receive time, looked up once if needed
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})

		var fields [4][]byte
		n := 0
		for rest := line; ; {
			rest = bytes.TrimLeft(rest, " \t")
			if len(rest) == 0 {
				break
			}
			end := bytes.IndexAny(rest, " \t")
			if end < 0 {
				end = len(rest)
			}
			if n < len(fields) {
				fields[n] = rest[:end]
			}
			n++
			rest = rest[end:]
		}
		if n == 0 {
			continue
		}

		var buf [256]byte
		b := d.paths.Builder(buf[:0]).Write(fields[0])
		var tags *metric.TagSet
		if b.HasTags() {
			b, tags = d.paths.Builder(buf[:0]).WriteName(fields[0], out)
		}
		if n < 2 || n > 3 || n == 2 && d.cfg.MissingTimestamp != MissingReceiveTime {
			if err := reject(out, b, ReasonBadLine); err != nil {
				return err
			}
			continue
		}
		if reason := b.Check(); reason != "" {
			if err := reject(out, b, reason); err != nil {
				return err
			}
			continue
		}
		v, reason := NumberText(fields[1])
		if reason != "" {
			if err := reject(out, b, reason); err != nil {
				return err
			}
			continue
		}
		var ts float64
		if n == 3 && !bytes.Equal(fields[2], []byte("-1")) {
			t, reason := NumberText(fields[2])
			if reason == "" && t < 0 {
				reason = metric.ReasonBadTimestamp
			}
			if reason != "" {
				if err := reject(out, b, metric.ReasonBadTimestamp); err != nil {
					return err
				}
				continue
			}
			ts = t + 0
		} else {
			if now < 0 {
				now = receiveTime(msg)
			}
			ts = now
		}
		path := out.String(b.Bytes())
		if err := out.Add(metric.Sample{Path: path, Time: ts, Value: v}); err != nil {
			return err
		}
		if err := recordRepairs(out, tags, path); err != nil {
			return err
		}
	}
	return nil
}
