package decoders

import (
	"errors"
	"fmt"

	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

// ReasonTooDeep rejects a message nested deeper than the decoder's
// max_depth: no metrics message needs it, and a hostile one uses it to
// make parsers work.
const ReasonTooDeep = "too_deep"

func init() {
	Register("slice", "Voltha KPI messages: data, prefixes (KpiEvent) and slice_data (KpiEvent2) shapes", newSlice)
}

// DefaultSliceDataPath lays out the samples of the slice_data shape the
// way a Grafana user browses them: by device, then by what the entry
// measures (its title, then its context, such as the port), then the metric.
const DefaultSliceDataPath = "voltha.{device_id}.{title}.{context?}.{metric}"

// SliceConfig configures the slice decoder.
type SliceConfig struct {
	// MaxMessageBytes is the largest message decoded; a larger one is
	// rejected as too_large before any parsing.
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	// MaxDepth is the deepest nesting of objects and arrays accepted; the
	// message object is level 1, so the data shape needs 3 and slice_data 5.
	MaxDepth int `mapstructure:"max_depth"`
	// MissingTimestamp is what a message without ts gets: "reject" or
	// "receive_time" (the Kafka record's time).
	MissingTimestamp string `mapstructure:"missing_timestamp"`
	// SliceDataPath is the path template of the slice_data shape; its
	// fields are those of each entry's metadata.
	SliceDataPath string `mapstructure:"slice_data_path"`
	// Tags maps Graphite tag keys to fields of each slice_data entry's
	// metadata (or constants): see tagTemplate. Empty for untagged paths.
	Tags map[string]string `mapstructure:"tags"`
	// Values says which values count as numbers.
	Values ValueConfig `mapstructure:"values"`
	// Sanitize configures the path sanitiser.
	Sanitize PathConfig `mapstructure:"sanitize"`
}

// Bounds of SliceConfig.MaxDepth: below 3 no slice message fits, and a
// limit above encoding/json's own (10 000) would protect nothing.
const (
	sliceMinDepth = 3
	sliceMaxDepth = 10000
)

// DefaultSliceConfig returns the slice decoder's defaults.
func DefaultSliceConfig() SliceConfig {
	return SliceConfig{
		MaxMessageBytes:  1 << 20,
		MaxDepth:         32,
		MissingTimestamp: MissingReject,
		SliceDataPath:    DefaultSliceDataPath,
		Values:           DefaultValueConfig(),
		Sanitize:         DefaultPathConfig(),
	}
}

// Validate checks the config, naming the offending key.
func (c SliceConfig) Validate() error {
	if c.MaxMessageBytes <= 0 {
		return fmt.Errorf("max_message_bytes must be positive, got %d", c.MaxMessageBytes)
	}
	if c.MaxDepth < sliceMinDepth || c.MaxDepth > sliceMaxDepth {
		return fmt.Errorf("max_depth must be between %d and %d, got %d", sliceMinDepth, sliceMaxDepth, c.MaxDepth)
	}
	if err := checkMissing(c.MissingTimestamp); err != nil {
		return fmt.Errorf("missing_timestamp: %w", err)
	}
	if _, err := parseTemplate(c.SliceDataPath); err != nil {
		return fmt.Errorf("slice_data_path: %q: %w", c.SliceDataPath, err)
	}
	if _, err := parseTagTemplate(c.Tags, nil); err != nil {
		return err
	}
	return c.Sanitize.Validate()
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
	tmpl, _ := parseTemplate(cfg.SliceDataPath) // checked by Validate
	tags, _ := parseTagTemplate(cfg.Tags, nil)
	return &slice{cfg: cfg, scan: jsonscan.Scanner{MaxDepth: cfg.MaxDepth}, tmpl: tmpl, tags: tags, paths: NewPathSanitizer(cfg.Sanitize)}, nil
}

// slice decodes the three message shapes of Voltha's KPI publishers:
//
//	{"type":"slice","ts":1480000000,"data":{"voltha.internal.abc":{"deferreds":12,"rss-mb":80}}}
//	{"type":"slice","ts":1484291389.5,"prefixes":{"voltha.simulated_olt.eecd":{"metrics":{"cpu_util":24.54}}}}
//	{"type":"slice","ts":1534440704,"slice_data":[{"metadata":{"title":"Ethernet","ts":1534440704,
//	  "device_id":"000115929ed71696","context":{"port_no":"1"}},"metrics":{"tx_packets":16}}]}
//
// The first two give <object path>.<metric> (voltha.internal.abc.deferreds,
// voltha.simulated_olt.eecd.cpu_util) at the message's ts; the third gives
// each entry's metrics along SliceDataPath (voltha.000115929ed71696.Ethernet.1.tx_packets)
// at the entry's own metadata.ts, else the message's. Samples come out in
// document order; paths are sanitised.
//
// The decoder holds only immutable config, so one value serves all
// workers; the scratch it needs lives on each call's stack.
type slice struct {
	cfg   SliceConfig
	scan  jsonscan.Scanner
	tmpl  pathTemplate
	tags  tagTemplate
	paths *PathSanitizer
}

var (
	_ metric.Decoder      = (*slice)(nil)
	_ metric.CheckedPaths = (*slice)(nil)
)

// PathsChecked is true: every path comes out of the sanitiser, which
// guarantees metric.ValidPath (FuzzSlice asserts it).
func (d *slice) PathsChecked() bool { return true }

// MaxMessageBytes is max_message_bytes (metric.MessageLimit).
func (d *slice) MaxMessageBytes() int { return d.cfg.MaxMessageBytes }

// sliceMessage is what the first pass keeps of a message's top level: the
// raw members the decoder needs, first occurrence of each (as jsonscan's
// Lookup, and so the router's type match, also take the first).
type sliceMessage struct {
	ts, data, prefixes, sliceData                 []byte
	tsKind, dataKind, prefixesKind, sliceDataKind jsonscan.Kind
}

func (d *slice) Decode(msg *metric.Message, out *metric.Result) error {
	if len(msg.Value) > d.cfg.MaxMessageBytes {
		return metric.Rejectf(metric.ReasonTooLarge, "%d bytes, limit %d", len(msg.Value), d.cfg.MaxMessageBytes)
	}
	if d.decodeSinglePass(msg, out) {
		return nil
	}
	return d.decodeGeneral(msg, out)
}

// decodeSinglePass is the single pass for the common cases, the data and
// prefixes shapes: it reads the message once, building each sample as it
// meets its value. It gives up (returning false, with out as it was) on
// anything else: slice_data, both shapes in one message, a key with
// escapes, a member of the wrong kind, broken JSON, a missing or bad ts.
// decodeGeneral then decides, so that every rejection, and every detail
// of its wording, has one source. FuzzSliceSinglePass holds the two to
// the same result. Past the output budget it gives up too, leaving its
// charges: the general decoder then validates the message and fails at
// its first charge, so the budget's reason also has one source.
func (d *slice) decodeSinglePass(msg *metric.Message, out *metric.Result) bool {
	nSamples, nRejected := len(out.Samples), len(out.Rejected)
	giveUp := func() bool {
		out.Samples, out.Rejected = out.Samples[:nSamples], out.Rejected[:nRejected]
		return false
	}
	c := d.scan.Cursor(msg.Value)
	if c.EnterObject() != nil {
		return false
	}
	var tsRaw []byte
	shape := "" // "data" or "prefixes", once met
	for {
		key, escaped, more, err := c.Next()
		if err != nil || escaped {
			return giveUp()
		}
		if !more {
			break
		}
		switch string(key) { // compared, never kept: no allocation
		case "ts":
			if tsRaw == nil {
				v, kind, err := c.Value()
				if err != nil || kind != jsonscan.Number {
					return giveUp()
				}
				tsRaw = v
				continue
			}
		case "data", "prefixes":
			k := "data"
			if key[0] == 'p' {
				k = "prefixes"
			}
			if shape == "" {
				shape = k
				if !d.objects(&c, out, k == "prefixes") {
					return giveUp()
				}
				continue
			}
			if shape != k {
				return giveUp() // the general decoder emits data before prefixes
			}
		case "slice_data":
			return giveUp()
		}
		if _, _, err := c.Value(); err != nil { // a member the decoder ignores, or a repeat
			return giveUp()
		}
	}
	if c.End() != nil || shape == "" {
		return giveUp()
	}
	var ts float64
	var err error
	if tsRaw != nil {
		ts, err = NumericTimestamp(tsRaw, UnitSeconds)
	} else {
		ts, err = missingTimestamp(msg, d.cfg.MissingTimestamp)
	}
	if err != nil {
		return giveUp()
	}
	// ts may come after the samples in the message: they get it now.
	for i := nSamples; i < len(out.Samples); i++ {
		out.Samples[i].Time = ts
	}
	return true
}

// objects reads the object at c whose members name objects of metrics:
// {"<object path>":{"<metric>":value,...},...} (data), or, with prefixes,
// {"<prefix>":{"metrics":{"<metric>":value,...},...},...}.
func (d *slice) objects(c *jsonscan.Cursor, out *metric.Result, prefixes bool) bool {
	if c.EnterObject() != nil {
		return false
	}
	for {
		objPath, escaped, more, err := c.Next()
		if err != nil || escaped {
			return false
		}
		if !more {
			return true
		}
		if c.EnterObject() != nil {
			return false
		}
		var buf [256]byte
		prefix := d.paths.Builder(buf[:0]).Write(objPath).Dot()
		if !prefixes {
			if !d.metrics(c, out, prefix) {
				return false
			}
			continue
		}
		seen := false
		for { // a prefix's entry: its first "metrics" member; the rest is skipped
			key, escaped, more, err := c.Next()
			if err != nil || escaped {
				return false
			}
			if !more {
				break
			}
			if string(key) == "metrics" && !seen {
				seen = true
				if c.EnterObject() != nil || !d.metrics(c, out, prefix) {
					return false
				}
				continue
			}
			if _, _, err := c.Value(); err != nil {
				return false
			}
		}
	}
}

// metrics reads the members of the object c has just entered, one sample
// each, named prefix.<member>, as appendMetrics does.
func (d *slice) metrics(c *jsonscan.Cursor, out *metric.Result, prefix PathBuilder) bool {
	for {
		name, escaped, more, err := c.Next()
		if err != nil || escaped {
			return false
		}
		if !more {
			return true
		}
		var v float64
		var reason string
		if c.Kind() == jsonscan.Number { // the common case, read in one go
			f, err := c.Float()
			if err != nil {
				return false
			}
			v, reason = finiteValue(f)
		} else {
			value, kind, err := c.Value()
			if err != nil {
				return false
			}
			v, reason = d.cfg.Values.JSONValue(value, kind)
		}
		b, plain := prefix.WriteAllowed(name)
		if !plain {
			n := len(b.buf)
			if b = b.Write(name); len(b.buf) == n {
				reason = metric.ReasonBadPath
			}
		}
		if r := b.Check(); r != "" && reason != metric.ReasonBadPath {
			reason = r
		}
		if reason != "" {
			if reject(out, b, reason) != nil {
				return false // past the budget: decodeGeneral rejects the message
			}
			continue
		}
		if out.Add(metric.Sample{Path: out.String(b.Bytes()), Value: v}) != nil {
			return false
		}
	}
}

// decodeGeneral reads every shape, in two passes: the first validates the
// whole message and finds its members, the second walks the shapes.
func (d *slice) decodeGeneral(msg *metric.Message, out *metric.Result) error {
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
		case "prefixes":
			if m.prefixes == nil {
				m.prefixes, m.prefixesKind = value, kind
			}
		case "slice_data":
			if m.sliceData == nil {
				m.sliceData, m.sliceDataKind = value, kind
			}
		}
		return nil
	})
	if err != nil {
		return scanReject(err, d.cfg.MaxDepth)
	}

	// The message's ts. Only slice_data entries may do without it, when
	// they carry their own.
	ts, tsErr := -1.0, error(nil)
	switch {
	case m.ts != nil:
		if m.tsKind != jsonscan.Number {
			return metric.Rejectf(metric.ReasonBadTimestamp, "ts is %s, want number", m.tsKind)
		}
		if ts, err = NumericTimestamp(m.ts, UnitSeconds); err != nil {
			return err
		}
	default:
		ts, tsErr = missingTimestamp(msg, d.cfg.MissingTimestamp)
		if tsErr != nil && (m.data != nil || m.prefixes != nil || m.sliceData == nil) {
			return tsErr
		}
	}
	if m.data == nil && m.prefixes == nil && m.sliceData == nil {
		return metric.Rejectf(metric.ReasonBadShape, "no data member")
	}

	// Second pass: the shapes. A bad shape met half-way rejects the whole
	// message, so what it already appended is taken back.
	nSamples, nRejected := len(out.Samples), len(out.Rejected)
	if err := d.decodeShapes(&m, ts, tsErr, out); err != nil {
		out.Samples, out.Rejected = out.Samples[:nSamples], out.Rejected[:nRejected]
		return scanReject(err, d.cfg.MaxDepth)
	}
	return nil
}

func (d *slice) decodeShapes(m *sliceMessage, ts float64, tsErr error, out *metric.Result) error {
	if m.data != nil {
		if m.dataKind != jsonscan.Object {
			return metric.Rejectf(metric.ReasonBadShape, "data is %s, want object", m.dataKind)
		}
		err := d.scan.ObjectEach(m.data, func(objPath, metrics []byte, kind jsonscan.Kind) error {
			if kind != jsonscan.Object {
				return metric.Rejectf(metric.ReasonBadShape, "data[%s] is %s, want object", short(objPath), kind)
			}
			var buf [256]byte // paths are built here, on the stack unless one outgrows it
			return d.appendMetrics(out, d.paths.Builder(buf[:0]).Write(objPath), metrics, ts, nil)
		})
		if err != nil {
			return err
		}
	}
	if m.prefixes != nil {
		if m.prefixesKind != jsonscan.Object {
			return metric.Rejectf(metric.ReasonBadShape, "prefixes is %s, want object", m.prefixesKind)
		}
		err := d.scan.ObjectEach(m.prefixes, func(prefix, entry []byte, kind jsonscan.Kind) error {
			if kind != jsonscan.Object {
				return metric.Rejectf(metric.ReasonBadShape, "prefixes[%s] is %s, want object", short(prefix), kind)
			}
			metrics, mkind, err := d.scan.Lookup(entry, "metrics")
			if errors.Is(err, jsonscan.ErrNotFound) {
				return nil
			}
			if err != nil || mkind != jsonscan.Object {
				return metric.Rejectf(metric.ReasonBadShape, "prefixes[%s].metrics is %s, want object", short(prefix), mkind)
			}
			var buf [256]byte
			return d.appendMetrics(out, d.paths.Builder(buf[:0]).Write(prefix), metrics, ts, nil)
		})
		if err != nil {
			return err
		}
	}
	if m.sliceData != nil {
		if m.sliceDataKind != jsonscan.Array {
			return metric.Rejectf(metric.ReasonBadShape, "slice_data is %s, want array", m.sliceDataKind)
		}
		i := -1
		return d.scan.ArrayEach(m.sliceData, func(entry []byte, kind jsonscan.Kind) error {
			i++
			return d.sliceDataEntry(out, i, entry, kind, ts, tsErr)
		})
	}
	return nil
}

// sliceDataEntry decodes one entry of slice_data: {"metadata":{...},"metrics":{...}}.
func (d *slice) sliceDataEntry(out *metric.Result, i int, entry []byte, kind jsonscan.Kind, ts float64, tsErr error) error {
	if kind != jsonscan.Object {
		return metric.Rejectf(metric.ReasonBadShape, "slice_data[%d] is %s, want object", i, kind)
	}
	var meta, metrics []byte
	var metaKind, metricsKind jsonscan.Kind
	_ = d.scan.ObjectEach(entry, func(key, value []byte, kind jsonscan.Kind) error {
		switch string(key) {
		case "metadata":
			if meta == nil {
				meta, metaKind = value, kind
			}
		case "metrics":
			if metrics == nil {
				metrics, metricsKind = value, kind
			}
		}
		return nil
	}) // validated by the first pass
	if metrics == nil {
		return nil
	}
	if metricsKind != jsonscan.Object {
		return metric.Rejectf(metric.ReasonBadShape, "slice_data[%d].metrics is %s, want object", i, metricsKind)
	}
	if meta == nil {
		meta, metaKind = []byte("{}"), jsonscan.Object
	}
	if metaKind != jsonscan.Object {
		return metric.Rejectf(metric.ReasonBadShape, "slice_data[%d].metadata is %s, want object", i, metaKind)
	}
	src := fieldSource{scan: d.scan, obj: meta}

	// The entry's own ts wins over the message's.
	if raw, tkind, err := d.scan.Lookup(meta, "ts"); err == nil && tkind != jsonscan.Null {
		if tkind != jsonscan.Number {
			tsErr = metric.Rejectf(metric.ReasonBadTimestamp, "ts is %s, want number", tkind)
		} else {
			ts, tsErr = NumericTimestamp(raw, UnitSeconds)
		}
	}
	var buf [256]byte
	b, at, missing := d.tmpl.render(d.paths.Builder(buf[:0]), src, 0)
	// The entry's head is built once and shared by its metrics, each of
	// which is charged for it again in its path; charging the expansion
	// itself bounds a message of many entries whose heads are long and
	// whose metrics are few or bad.
	if err := out.Charge(len(b.Bytes())); err != nil {
		return err
	}
	switch {
	case missing != "":
		return d.rejectEntry(out, b, metrics, ReasonMissingField)
	case tsErr != nil:
		return d.rejectEntry(out, b, metrics, metric.ReasonOf(tsErr))
	}
	tail := templateTail{tmpl: &d.tmpl, at: at, src: src}
	if !d.tags.empty() {
		var tagBuf [256]byte
		tail.tags = d.tags.suffix(tagBuf[:0], out, b.Bytes(), jsonTagLookup(src))
		if err := out.Charge(len(tail.tags)); err != nil {
			return err
		}
	}
	return d.appendMetrics(out, b, metrics, ts, &tail)
}

// rejectEntry rejects every metric of an entry that has no usable path or time.
func (d *slice) rejectEntry(out *metric.Result, b PathBuilder, metrics []byte, reason string) error {
	return d.scan.ObjectEach(metrics, func(name, _ []byte, _ jsonscan.Kind) error {
		return reject(out, b.Dot().Write(name), reason)
	})
}

// templateTail is the rest of a path template after its {metric}.
type templateTail struct {
	tmpl *pathTemplate
	at   int // index of the {metric} part
	src  fieldSource
	tags []byte // the entry's tags, rendered (tagTemplate.suffix)
}

// appendMetrics appends one sample per member of the object metrics, named
// <path so far>.<member>[<template tail>]. It is the common end of every
// shape the decoder knows.
func (d *slice) appendMetrics(out *metric.Result, prefix PathBuilder, metrics []byte, ts float64, tail *templateTail) error {
	if tail == nil {
		prefix = prefix.Dot() // a template has its own separators
	}
	return d.scan.ObjectEach(metrics, func(name, value []byte, kind jsonscan.Kind) error {
		// prefix is copied each time: appending to b overwrites what
		// follows the prefix in the shared buffer, never the prefix.
		b := prefix
		n := len(b.buf)
		if b = b.Write(name); len(b.buf) == n {
			return reject(out, b, metric.ReasonBadPath) // nothing left of the name
		}
		if tail != nil {
			var missing string
			if b, _, missing = tail.tmpl.render(b, tail.src, tail.at+1); missing != "" {
				return reject(out, b, ReasonMissingField)
			}
			b = b.TagSuffix(tail.tags)
		}
		if reason := b.Check(); reason != "" {
			return reject(out, b, reason)
		}
		v, reason := d.cfg.Values.JSONValue(value, kind)
		if reason != "" {
			return reject(out, b, reason)
		}
		return out.Add(metric.Sample{Path: out.String(b.Bytes()), Time: ts, Value: v})
	})
}

// reject records that the sample at b's path was dropped for reason, and
// returns the over-budget rejection once rejections have used the budget
// up: a message of a million bad samples costs as much as a million good
// ones (each is logged, counted and kept until the message is done).
func reject(out *metric.Result, b PathBuilder, reason string) error {
	out.Reject(b.String(), reason)
	return out.Over()
}

// scanReject turns a scanner error into the whole-message rejection, and
// passes a rejection from a decoder's own callbacks through.
func scanReject(err error, maxDepth int) error {
	var (
		re *metric.RejectError
		se *jsonscan.Error
	)
	switch {
	case errors.As(err, &re):
		return err
	case errors.Is(err, jsonscan.ErrTooDeep):
		return metric.Rejectf(ReasonTooDeep, "more than %d levels", maxDepth)
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

// DefaultSliceDataTaggedPath is the path of the tagged VOLTHA layout
// (docs/tags.md): the title and the metric name, everything that tells
// one device or port from another in tags (DefaultVolthaTags).
const DefaultSliceDataTaggedPath = "voltha.{title}.{metric}"

// DefaultVolthaTags maps the metadata the VOLTHA adapters send with a KPI
// (voltha-events.md) to tags: what identifies a series, never a
// per-interval value. A field the adapter leaves empty (openolt's
// serial_no and logical_device_id) leaves its tag out.
func DefaultVolthaTags() map[string]string {
	return map[string]string{
		"device_id":         "{device_id}",
		"serial_no":         "{serial_no}",
		"logical_device_id": "{logical_device_id}",
		"devicetype":        "{context.devicetype}",
		"olt":               "{context.oltid}",
		"port":              "{context.portlabel|context.portno}",
		"onu_serial":        "{context.onu-serial-number}",
		"onu_id":            "{context.onuID}",
		"intf_id":           "{context.intfID}",
		"gem_id":            "{context.gemId}",
	}
}
