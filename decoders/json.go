package decoders

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unsafe"

	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

func init() {
	Register("json", "any JSON message, described in YAML: timestamp field and unit, metric fields, path template", newJSON)
}

// JSONTimestampConfig says where a json message's time is.
type JSONTimestampConfig struct {
	// Field is the dotted path of the timestamp field.
	Field string `mapstructure:"field"`
	// Unit is s, ms, us or ns for a number, rfc3339 for a string.
	Unit string `mapstructure:"unit"`
	// Missing is what a message without the field gets: "reject" or "receive_time".
	Missing string `mapstructure:"missing"`
}

// JSONConfig configures the json decoder, so that a new message type
// needs YAML and no Go:
//
//	decoders:
//	  onu-stats:
//	    kind: json
//	    prefix: voltha.onu
//	    path: "{device.id}.{port}.{metric}"
//	    timestamp: {field: collected_at, unit: ms}
//	    metrics_object: counters     # every numeric member of "counters"
//	    metrics: [optics.rx_power]   # and these fields
type JSONConfig struct {
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	MaxDepth        int `mapstructure:"max_depth"`
	// Prefix is put before every path; empty for none.
	Prefix string `mapstructure:"prefix"`
	// Path is the path template: {field.path} placeholders for values of
	// the message, {field?} for optional ones, and {metric} for the
	// metric's name.
	Path string `mapstructure:"path"`
	// Timestamp says where the time is.
	Timestamp JSONTimestampConfig `mapstructure:"timestamp"`
	// Metrics are the dotted paths of metric fields; each field's path is
	// its metric name.
	Metrics []string `mapstructure:"metrics"`
	// MetricsObject is the dotted path of an object whose numeric members
	// are metrics, named by their keys: numbers, and booleans and numeric
	// strings as Values allows. Other members (text, null, objects,
	// arrays) are skipped; a number that is not finite is rejected.
	MetricsObject string `mapstructure:"metrics_object"`
	// Tags maps Graphite tag keys to fields of the message (or
	// constants): see tagTemplate. Empty for untagged paths.
	Tags map[string]string `mapstructure:"tags"`
	// Values says which values count as numbers.
	Values ValueConfig `mapstructure:"values"`
	// Sanitize configures the path sanitiser.
	Sanitize PathConfig `mapstructure:"sanitize"`
}

// DefaultJSONConfig returns the json decoder's defaults; Metrics or
// MetricsObject must still be set.
func DefaultJSONConfig() JSONConfig {
	return JSONConfig{
		MaxMessageBytes: 1 << 20,
		MaxDepth:        32,
		Path:            "{metric}",
		Timestamp:       JSONTimestampConfig{Field: "ts", Unit: UnitSeconds, Missing: MissingReject},
		Values:          DefaultValueConfig(),
		Sanitize:        DefaultPathConfig(),
	}
}

// Validate checks the config, naming the offending key.
func (c JSONConfig) Validate() error {
	var errs []error
	if c.MaxMessageBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_message_bytes must be positive, got %d", c.MaxMessageBytes))
	}
	if c.MaxDepth < 1 || c.MaxDepth > 10000 {
		errs = append(errs, fmt.Errorf("max_depth must be between 1 and 10000, got %d", c.MaxDepth))
	}
	if _, err := parseTemplate(c.Path); err != nil {
		errs = append(errs, fmt.Errorf("path: %q: %w", c.Path, err))
	}
	if !validField(c.Timestamp.Field) {
		errs = append(errs, fmt.Errorf("timestamp.field: %q is not a dotted field path", c.Timestamp.Field))
	}
	if err := checkUnit(c.Timestamp.Unit); err != nil {
		errs = append(errs, fmt.Errorf("timestamp.unit: %w", err))
	}
	if err := checkMissing(c.Timestamp.Missing); err != nil {
		errs = append(errs, fmt.Errorf("timestamp.missing: %w", err))
	}
	if len(c.Metrics) == 0 && c.MetricsObject == "" {
		errs = append(errs, errors.New("metrics: name at least one field, or set metrics_object"))
	}
	for i, m := range c.Metrics {
		if !validField(m) {
			errs = append(errs, fmt.Errorf("metrics[%d]: %q is not a dotted field path", i, m))
		}
	}
	if c.MetricsObject != "" && !validField(c.MetricsObject) {
		errs = append(errs, fmt.Errorf("metrics_object: %q is not a dotted field path", c.MetricsObject))
	}
	if _, err := parseTagTemplate(c.Tags, nil); err != nil {
		errs = append(errs, err)
	}
	if err := c.Sanitize.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func validField(f string) bool {
	return f != "" && !strings.Contains("."+f+".", "..") && !strings.ContainsAny(f, "{}? \t\n")
}

func newJSON(decode metric.DecodeConfig, _ metric.Env) (metric.Decoder, error) {
	cfg := DefaultJSONConfig()
	if decode != nil {
		if err := decode(&cfg); err != nil {
			return nil, fmt.Errorf("json: config: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	d := &jsonDecoder{cfg: cfg, scan: jsonscan.Scanner{MaxDepth: cfg.MaxDepth}, paths: NewPathSanitizer(cfg.Sanitize)}
	d.tmpl, _ = parseTemplate(cfg.Path)
	if cfg.Prefix != "" {
		d.tmpl.parts = append([]templatePart{{literal: cfg.Prefix + "."}}, d.tmpl.parts...)
	}
	d.tags, _ = parseTagTemplate(cfg.Tags, nil)
	d.tsField = strings.Split(cfg.Timestamp.Field, ".")
	for _, m := range cfg.Metrics {
		d.metrics = append(d.metrics, jsonMetric{name: m, field: strings.Split(m, ".")})
	}
	if cfg.MetricsObject != "" {
		d.object = strings.Split(cfg.MetricsObject, ".")
	}
	return d, nil
}

// jsonDecoder decodes any JSON object its config describes: it finds the
// timestamp, renders the path template once per message, and appends one
// sample per metric field.
type jsonDecoder struct {
	cfg     JSONConfig
	scan    jsonscan.Scanner
	paths   *PathSanitizer
	tmpl    pathTemplate
	tags    tagTemplate
	tsField []string
	metrics []jsonMetric
	object  []string
}

// PathsChecked is true: every path comes out of the sanitiser and its
// Check, which guarantee metric.ValidPath (the fuzz test asserts it).
func (d *jsonDecoder) PathsChecked() bool { return true }

// MaxMessageBytes is max_message_bytes (metric.MessageLimit).
func (d *jsonDecoder) MaxMessageBytes() int { return d.cfg.MaxMessageBytes }

type jsonMetric struct {
	name  string
	field []string
}

var _ metric.Decoder = (*jsonDecoder)(nil)

// jsonScratch is the memory one Decode call works in.
type jsonScratch struct {
	top  [jsonTopMembers]member
	path [256]byte
	tags [256]byte
}

var jsonScratchPool = sync.Pool{New: func() any { return new(jsonScratch) }}

// jsonTopMembers is how many top-level members the first pass remembers;
// a field of a larger message is found by scanning again.
const jsonTopMembers = 32

func (d *jsonDecoder) Decode(msg *metric.Message, out *metric.Result) error {
	nSamples, nRejected := len(out.Samples), len(out.Rejected)
	if err := d.decode(msg, out); err != nil {
		out.Samples, out.Rejected = out.Samples[:nSamples], out.Rejected[:nRejected]
		return err
	}
	return nil
}

func (d *jsonDecoder) decode(msg *metric.Message, out *metric.Result) error {
	if len(msg.Value) > d.cfg.MaxMessageBytes {
		return metric.Rejectf(metric.ReasonTooLarge, "%d bytes, limit %d", len(msg.Value), d.cfg.MaxMessageBytes)
	}
	// The scratch escapes (the compiler cannot follow it through the
	// template), so it is pooled rather than allocated per message.
	scratch := jsonScratchPool.Get().(*jsonScratch)
	defer jsonScratchPool.Put(scratch)

	// First pass: validate the whole message, remembering its top level.
	top := scratch.top[:0]
	scanAgain := false
	err := d.scan.ObjectEach(msg.Value, func(key, value []byte, kind jsonscan.Kind) error {
		ks, ok1 := offset(msg.Value, key)
		vs, ok2 := offset(msg.Value, value)
		if len(top) == cap(top) || !ok1 || !ok2 {
			// Too many members, or an escaped key, which lives in
			// scratch memory: find fields by scanning instead.
			scanAgain = true
			return nil
		}
		top = append(top, member{ks: ks, ke: ks + int32(len(key)), vs: vs, ve: vs + int32(len(value)), kind: kind})
		return nil
	})
	if err != nil {
		return scanReject(err, d.cfg.MaxDepth)
	}
	src := fieldSource{scan: d.scan, obj: msg.Value, top: top}
	if scanAgain || len(top) == 0 {
		src.top = nil
	}

	var ts float64
	if raw, kind, ok := src.lookup(d.tsField); ok && kind != jsonscan.Null {
		if ts, err = JSONTimestamp(raw, kind, d.cfg.Timestamp.Unit); err != nil {
			return err
		}
	} else if ts, err = missingTimestamp(msg, d.cfg.Timestamp.Missing); err != nil {
		return metric.Rejectf(metric.ReasonBadTimestamp, "no %s member", d.cfg.Timestamp.Field)
	}

	head, at, missing := d.tmpl.render(d.paths.Builder(scratch.path[:0]), src, 0)
	if missing != "" {
		return metric.Rejectf(ReasonMissingField, "no value for %s", missing)
	}
	// The head is shared by every metric and charged again in each path;
	// charged once here too, it is the template's expansion (array and
	// object fields write every scalar they hold).
	if err := out.Charge(len(head.Bytes())); err != nil {
		return err
	}
	var object []byte
	if d.object != nil {
		raw, kind, ok := src.lookup(d.object)
		switch {
		case !ok || kind == jsonscan.Null:
			return metric.Rejectf(ReasonMissingField, "no %s member", d.cfg.MetricsObject)
		case kind != jsonscan.Object:
			return metric.Rejectf(metric.ReasonBadShape, "%s is %s, want object", d.cfg.MetricsObject, kind)
		}
		object = raw
	}
	m := jsonSample{d: d, out: out, head: head, src: src, at: at, ts: ts}
	if !d.tags.empty() {
		m.tags = d.tags.suffix(scratch.tags[:0], out, head.Bytes(), jsonTagLookup(src))
		if err := out.Charge(len(m.tags)); err != nil {
			return err
		}
	}
	for k := range d.metrics {
		raw, kind, ok := src.lookup(d.metrics[k].field)
		if !ok {
			b, ok, err := m.path(unsafeBytes(d.metrics[k].name))
			if err == nil && ok {
				err = reject(out, b, ReasonMissingField)
			}
			if err != nil {
				return err
			}
			continue
		}
		if err := m.append(unsafeBytes(d.metrics[k].name), raw, kind); err != nil {
			return err
		}
	}
	if object != nil {
		// validated by the first pass: the only error is the budget's
		return d.scan.ObjectEach(object, func(name, value []byte, kind jsonscan.Kind) error {
			// Only the numeric members are metrics: text, null, objects
			// and arrays are skipped, not rejected. A number that is
			// not finite still is.
			if _, reason := d.cfg.Values.JSONValue(value, kind); reason != metric.ReasonNotANumber && reason != ReasonNull {
				return m.append(name, value, kind)
			}
			return nil
		})
	}
	return nil
}

// offset returns where b starts in data, if it lies inside it.
func offset(data, b []byte) (int32, bool) {
	if len(b) == 0 || len(data) == 0 || len(data) > math.MaxInt32 {
		return 0, false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < start || p+uintptr(len(b)) > start+uintptr(len(data)) {
		return 0, false
	}
	return int32(p - start), true
}

// unsafeBytes views s as bytes, read only.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// jsonSample is what every metric of one message shares.
type jsonSample struct {
	d    *jsonDecoder
	out  *metric.Result
	head PathBuilder // the path up to {metric}
	src  fieldSource
	at   int // index of {metric} in the template
	ts   float64
	tags []byte // the message's tags, rendered (tagTemplate.suffix)
}

// path renders the path of the metric called name, or rejects it (ok
// false); the error is the budget's, once passed.
func (m *jsonSample) path(name []byte) (b PathBuilder, ok bool, err error) {
	n := len(m.head.buf)
	b = m.head.Write(name)
	if len(b.buf) == n {
		return b, false, reject(m.out, b, metric.ReasonBadPath) // nothing left of the name
	}
	b, _, missing := m.d.tmpl.render(b, m.src, m.at+1)
	if missing != "" {
		return b, false, reject(m.out, b, ReasonMissingField)
	}
	b = b.TagSuffix(m.tags)
	if reason := b.Check(); reason != "" {
		return b, false, reject(m.out, b, reason)
	}
	return b, true, nil
}

// append appends the sample of one metric, or rejects it; the error is
// the budget's, once passed.
func (m *jsonSample) append(name, raw []byte, kind jsonscan.Kind) error {
	b, ok, err := m.path(name)
	if !ok {
		return err
	}
	v, reason := m.d.cfg.Values.JSONValue(raw, kind)
	if reason != "" {
		return reject(m.out, b, reason)
	}
	return m.out.Add(metric.Sample{Path: m.out.String(b.Bytes()), Time: m.ts, Value: v})
}
