package decoders

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

func init() {
	Register("protobuf", "any protobuf message, described in YAML with its .proto file: timestamp field and unit, metric fields or a map or repeated message of metrics, path template", newProtobuf)
}

// UnitTimestamp is the unit of a google.protobuf.Timestamp field: it
// carries its own (seconds and nanoseconds), so it needs none.
const UnitTimestamp = "timestamp"

// ProtobufConfig configures the protobuf decoder, so that a protobuf KPI
// stream needs its .proto file and YAML, and no Go:
//
//	decoders:
//	  device-metrics:
//	    kind: protobuf
//	    proto: configs/device-metrics.proto
//	    message: example.metrics.DeviceMetrics
//	    prefix: devices
//	    path: "{site}.{device.id}.{metric}"
//	    timestamp: {field: collected_at}   # a google.protobuf.Timestamp
//	    metrics_object: [readings, counters] # repeated Reading {name, value}; map<string, uint64>
//	    metrics: [uptime_seconds]
type ProtobufConfig struct {
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	// Proto is the .proto file that declares Message; a relative path is
	// taken from the working directory.
	Proto string `mapstructure:"proto"`
	// ImportPaths are where the file's imports are looked for, besides
	// the file's own directory; google/protobuf/*.proto are built in.
	ImportPaths []string `mapstructure:"import_paths"`
	// Message is the full name of the message each Kafka record holds,
	// package included (example.metrics.DeviceMetrics).
	Message string `mapstructure:"message"`
	// Prefix is put before every path; empty for none.
	Prefix string `mapstructure:"prefix"`
	// Path is the path template: {field.subfield} placeholders for
	// fields of the message ({map_field.key} for a map entry), {a|b} for
	// the first of several that is set, {field?} for optional ones, and
	// {metric} for the metric's name.
	Path string `mapstructure:"path"`
	// Timestamp says where the time is. A google.protobuf.Timestamp field
	// needs no unit; a number is in s, ms, us or ns; a string is rfc3339.
	Timestamp JSONTimestampConfig `mapstructure:"timestamp"`
	// Metrics are the dotted paths of numeric fields; each field's path
	// is its metric name.
	Metrics []string `mapstructure:"metrics"`
	// MetricsObject are the dotted paths of fields holding many metrics
	// (one path, or a list): a map from name to number, a repeated
	// message of which each element has a name (MetricName) and a value
	// (MetricValue), or a message whose numeric fields are metrics named
	// by the fields.
	MetricsObject []string `mapstructure:"metrics_object"`
	// MetricName and MetricValue name the fields of a repeated message's
	// elements; by default "name" and "value".
	MetricName  string `mapstructure:"metric_name"`
	MetricValue string `mapstructure:"metric_value"`
	// Values says which values count as numbers (booleans here).
	Values ValueConfig `mapstructure:"values"`
	// Sanitize configures the path sanitiser.
	Sanitize PathConfig `mapstructure:"sanitize"`
	// Tags maps Graphite tag keys to scalar fields of the message (or
	// constants): see tagTemplate. Empty for untagged paths.
	Tags map[string]string `mapstructure:"tags"`
}

// DefaultProtobufConfig returns the protobuf decoder's defaults; Proto,
// Message and Metrics or MetricsObject must still be set.
func DefaultProtobufConfig() ProtobufConfig {
	return ProtobufConfig{
		MaxMessageBytes: 1 << 20,
		Path:            "{metric}",
		Timestamp:       JSONTimestampConfig{Field: "ts", Unit: UnitSeconds, Missing: MissingReject},
		MetricName:      "name",
		MetricValue:     "value",
		Values:          DefaultValueConfig(),
		Sanitize:        DefaultPathConfig(),
	}
}

// Validate checks what can be checked without the .proto file, naming
// the offending key; the fields are checked against the file when the
// decoder is built.
func (c ProtobufConfig) Validate() error {
	var errs []error
	if c.MaxMessageBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_message_bytes must be positive, got %d", c.MaxMessageBytes))
	}
	if c.Proto == "" {
		errs = append(errs, errors.New("proto: must name the .proto file that declares the message"))
	}
	if c.Message == "" {
		errs = append(errs, errors.New("message: must name the message, package included (example.metrics.DeviceMetrics)"))
	}
	if _, err := parseFieldTemplate(c.Path, nil); err != nil {
		errs = append(errs, fmt.Errorf("path: %q: %w", c.Path, err))
	}
	if _, err := parseTagTemplate(c.Tags, nil); err != nil {
		errs = append(errs, err)
	}
	if !validField(c.Timestamp.Field) {
		errs = append(errs, fmt.Errorf("timestamp.field: %q is not a dotted field path", c.Timestamp.Field))
	}
	if c.Timestamp.Unit != UnitTimestamp {
		if err := checkUnit(c.Timestamp.Unit); err != nil {
			errs = append(errs, fmt.Errorf("timestamp.unit: %w", err))
		}
	}
	if err := checkMissing(c.Timestamp.Missing); err != nil {
		errs = append(errs, fmt.Errorf("timestamp.missing: %w", err))
	}
	if len(c.Metrics) == 0 && len(c.MetricsObject) == 0 {
		errs = append(errs, errors.New("metrics or metrics_object must be set"))
	}
	for i, m := range c.Metrics {
		if !validField(m) {
			errs = append(errs, fmt.Errorf("metrics[%d]: %q is not a dotted field path", i, m))
		}
	}
	for i, o := range c.MetricsObject {
		if !validField(o) {
			errs = append(errs, fmt.Errorf("metrics_object[%d]: %q is not a dotted field path", i, o))
		}
	}
	if err := c.Sanitize.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func newProtobuf(decode metric.DecodeConfig, _ metric.Env) (metric.Decoder, error) {
	cfg := DefaultProtobufConfig()
	if decode != nil {
		if err := decode(&cfg); err != nil {
			return nil, fmt.Errorf("protobuf: config: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("protobuf: %w", err)
	}
	d, err := buildProtobuf(cfg)
	if err != nil {
		return nil, fmt.Errorf("protobuf: %w", err)
	}
	return d, nil
}

// protobufDecoder reads each message with dynamicpb, as the .proto file
// describes it, and takes its timestamp, path fields and metrics by the
// field paths resolved at start-up.
type protobufDecoder struct {
	cfg     ProtobufConfig
	md      protoreflect.MessageDescriptor
	shape   *pbMessageShape // md's fields, for protoParseCost
	paths   *PathSanitizer
	tmpl    fieldTemplate
	refs    [][]fieldRef // per template part, its alternatives
	tags    tagTemplate
	tagRefs [][]fieldRef // per tag, its alternatives
	at      int          // index of {metric}
	tail    string
	ts      fieldRef
	tsKind  tsKind
	metrics []protoMetric
	objects []*protoObject
	pool    sync.Pool // *dynamicpb.Message
}

var (
	_ metric.Decoder      = (*protobufDecoder)(nil)
	_ metric.CheckedPaths = (*protobufDecoder)(nil)
	_ metric.MessageLimit = (*protobufDecoder)(nil)
)

// PathsChecked is true: every path comes out of the sanitiser and its Check.
func (d *protobufDecoder) PathsChecked() bool { return true }

// MaxMessageBytes is the largest message decoded (metric.MessageLimit).
func (d *protobufDecoder) MaxMessageBytes() int { return d.cfg.MaxMessageBytes }

type tsKind uint8

const (
	tsNumber tsKind = iota
	tsMessage
	tsString
)

// fieldRef is a dotted field path resolved against the message: its
// steps, each a field of the message the previous step reached, or the
// key of the map field before it.
type fieldRef struct {
	steps []fieldStep
}

type fieldStep struct {
	fd  protoreflect.FieldDescriptor
	key string // for a map field: the entry's key
}

type protoMetric struct {
	name string
	ref  fieldRef
}

// protoObject is metrics_object resolved: a map, a repeated message or a
// message.
type protoObject struct {
	path        string // as configured
	ref         fieldRef
	kind        objectKind
	name, value protoreflect.FieldDescriptor // of a repeated message's elements
}

type objectKind uint8

const (
	objectMap objectKind = iota
	objectList
	objectMessage
)

// where says where a descriptor is declared, for errors: "file.proto:12".
func where(d protoreflect.Descriptor) string {
	loc := d.ParentFile().SourceLocations().ByDescriptor(d)
	return fmt.Sprintf("%s:%d", d.ParentFile().Path(), loc.StartLine+1)
}

func buildProtobuf(cfg ProtobufConfig) (*protobufDecoder, error) {
	dir, file := filepath.Split(cfg.Proto)
	importPaths := append([]string{filepath.Clean(dir)}, cfg.ImportPaths...)
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: importPaths}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	files, err := c.Compile(context.Background(), file)
	if err != nil {
		return nil, fmt.Errorf("proto: %s: %w", cfg.Proto, err)
	}
	desc := files[0].FindDescriptorByName(protoreflect.FullName(cfg.Message))
	md, ok := desc.(protoreflect.MessageDescriptor)
	if !ok {
		var names []string
		msgs := files[0].Messages()
		for i := range msgs.Len() {
			names = append(names, string(msgs.Get(i).FullName()))
		}
		return nil, fmt.Errorf("message: %s declares no message %q (it declares %s)", cfg.Proto, cfg.Message, strings.Join(names, ", "))
	}
	d := &protobufDecoder{cfg: cfg, md: md, shape: protoShapeOf(md), paths: NewPathSanitizer(cfg.Sanitize)}
	d.pool.New = func() any { return dynamicpb.NewMessage(md) }

	var errs []error
	if d.tmpl, err = parseFieldTemplate(cfg.Path, nil); err != nil {
		errs = append(errs, fmt.Errorf("path: %q: %w", cfg.Path, err))
	} else {
		if cfg.Prefix != "" {
			d.tmpl.parts = append([]fieldPart{{literal: cfg.Prefix + "."}}, d.tmpl.parts...)
		}
		d.at, d.tail = d.tmpl.metricAt(), d.tmpl.tail()
		for _, p := range d.tmpl.parts {
			var refs []fieldRef
			for _, alt := range p.alts {
				ref, err := resolveField(md, alt, scalarLeaf)
				if err != nil {
					errs = append(errs, fmt.Errorf("path: placeholder %s: %w", p.text, err))
					continue
				}
				refs = append(refs, ref)
			}
			d.refs = append(d.refs, refs)
		}
	}

	if d.tags, err = parseTagTemplate(cfg.Tags, nil); err != nil {
		errs = append(errs, err)
	}
	for _, s := range d.tags.specs {
		var refs []fieldRef
		for _, alt := range s.alts {
			ref, err := resolveField(md, alt, scalarLeaf)
			if err != nil {
				errs = append(errs, fmt.Errorf("tags.%s: %w", s.key, err))
				continue
			}
			refs = append(refs, ref)
		}
		d.tagRefs = append(d.tagRefs, refs)
	}

	tsField := strings.Split(cfg.Timestamp.Field, ".")
	if ref, err := resolveField(md, tsField, timestampLeaf); err != nil {
		errs = append(errs, fmt.Errorf("timestamp.field: %w", err))
	} else {
		d.ts = ref
		fd := ref.steps[len(ref.steps)-1].fd
		unit := cfg.Timestamp.Unit
		switch {
		case fd.Kind() == protoreflect.MessageKind:
			d.tsKind = tsMessage
		case fd.Kind() == protoreflect.StringKind:
			d.tsKind = tsString
			if unit != UnitRFC3339 {
				errs = append(errs, fmt.Errorf("timestamp.unit: %s (%s) is a string: want unit rfc3339, got %q", cfg.Timestamp.Field, where(fd), unit))
			}
		default:
			d.tsKind = tsNumber
			if unit == UnitRFC3339 || unit == UnitTimestamp {
				errs = append(errs, fmt.Errorf("timestamp.unit: %s (%s) is a number: want s, ms, us or ns, got %q", cfg.Timestamp.Field, where(fd), unit))
			}
		}
	}

	for i, m := range cfg.Metrics {
		ref, err := resolveField(md, strings.Split(m, "."), numericLeaf)
		if err != nil {
			errs = append(errs, fmt.Errorf("metrics[%d]: %w", i, err))
			continue
		}
		d.metrics = append(d.metrics, protoMetric{name: m, ref: ref})
	}
	for i, o := range cfg.MetricsObject {
		obj, err := resolveObject(md, o, cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("metrics_object[%d]: %w", i, err))
			continue
		}
		d.objects = append(d.objects, obj)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

// What the last field of a path must be.
type leafKind uint8

const (
	scalarLeaf    leafKind = iota // a path segment: string, number, bool or enum
	numericLeaf                   // a metric: a number or bool
	timestampLeaf                 // a number, string or google.protobuf.Timestamp
	anyLeaf                       // metrics_object: checked by the caller
)

func isNumeric(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind, protoreflect.GroupKind, protoreflect.EnumKind:
		return false
	}
	return true
}

// resolveField follows a dotted path through md's fields, saying what is
// wrong and where the .proto declares it.
func resolveField(md protoreflect.MessageDescriptor, path []string, leaf leafKind) (fieldRef, error) {
	var ref fieldRef
	for i := 0; i < len(path); i++ {
		name := path[i]
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return ref, fmt.Errorf("%s: no field %q in %s (%s)", strings.Join(path, "."), name, md.FullName(), where(md))
		}
		step := fieldStep{fd: fd}
		last := i == len(path)-1
		switch {
		case fd.IsMap():
			if leaf == anyLeaf && last {
				break
			}
			if i+1 >= len(path) {
				return ref, fmt.Errorf("%s: %s (%s) is a map: name its key, as %s.<key>", strings.Join(path, "."), name, where(fd), name)
			}
			if fd.MapKey().Kind() != protoreflect.StringKind {
				return ref, fmt.Errorf("%s: %s (%s) is a map with %s keys: only string keys can be named", strings.Join(path, "."), name, where(fd), fd.MapKey().Kind())
			}
			i++
			step.key = path[i]
			last = i == len(path)-1
			fd = fd.MapValue()
		case fd.IsList():
			if leaf == anyLeaf && last {
				break
			}
			return ref, fmt.Errorf("%s: %s (%s) is repeated: a path needs one value", strings.Join(path, "."), name, where(fd))
		}
		ref.steps = append(ref.steps, step)
		if fd.Message() != nil && !(leaf == timestampLeaf && last && fd.Message().FullName() == "google.protobuf.Timestamp") &&
			!(leaf == anyLeaf && last) {
			if last {
				return ref, fmt.Errorf("%s: %s (%s) is a message %s: name one of its fields", strings.Join(path, "."), name, where(fd), fd.Message().FullName())
			}
			md = fd.Message()
			continue
		}
		if !last {
			return ref, fmt.Errorf("%s: %s (%s) is a %s, which has no fields", strings.Join(path, "."), name, where(fd), fd.Kind())
		}
		switch leaf {
		case numericLeaf:
			if !isNumeric(fd.Kind()) {
				return ref, fmt.Errorf("%s: %s (%s) is a %s, not a number", strings.Join(path, "."), name, where(fd), fd.Kind())
			}
		case scalarLeaf:
			if fd.Kind() == protoreflect.BytesKind {
				return ref, fmt.Errorf("%s: %s (%s) is bytes, which a path cannot hold", strings.Join(path, "."), name, where(fd))
			}
		case timestampLeaf:
			if fd.Kind() == protoreflect.BytesKind || fd.Kind() == protoreflect.EnumKind || fd.Kind() == protoreflect.BoolKind {
				return ref, fmt.Errorf("%s: %s (%s) is a %s: want a number, a string or a google.protobuf.Timestamp", strings.Join(path, "."), name, where(fd), fd.Kind())
			}
		}
	}
	return ref, nil
}

func resolveObject(md protoreflect.MessageDescriptor, path string, cfg ProtobufConfig) (*protoObject, error) {
	ref, err := resolveField(md, strings.Split(path, "."), anyLeaf)
	if err != nil {
		return nil, err
	}
	fd := ref.steps[len(ref.steps)-1].fd
	obj := &protoObject{path: path, ref: ref}
	switch {
	case fd.IsMap():
		if fd.MapKey().Kind() != protoreflect.StringKind || !isNumeric(fd.MapValue().Kind()) {
			return nil, fmt.Errorf("%s (%s) is a map<%s, %s>: want map<string, number>", path, where(fd), fd.MapKey().Kind(), fd.MapValue().Kind())
		}
		obj.kind = objectMap
	case fd.IsList() && fd.Message() != nil:
		obj.kind = objectList
		el := fd.Message()
		obj.name = el.Fields().ByName(protoreflect.Name(cfg.MetricName))
		obj.value = el.Fields().ByName(protoreflect.Name(cfg.MetricValue))
		switch {
		case obj.name == nil || obj.name.Kind() != protoreflect.StringKind || obj.name.IsList():
			return nil, fmt.Errorf("%s (%s) is a repeated %s, which has no string field %q for the metric's name (metric_name)", path, where(fd), el.FullName(), cfg.MetricName)
		case obj.value == nil || !isNumeric(obj.value.Kind()) || obj.value.IsList():
			return nil, fmt.Errorf("%s (%s) is a repeated %s, which has no numeric field %q for the metric's value (metric_value)", path, where(fd), el.FullName(), cfg.MetricValue)
		}
	case fd.IsList():
		return nil, fmt.Errorf("%s (%s) is a repeated %s: want a map<string, number>, a repeated message or a message", path, where(fd), fd.Kind())
	case fd.Message() != nil:
		obj.kind = objectMessage
	default:
		return nil, fmt.Errorf("%s (%s) is a %s: want a map<string, number>, a repeated message or a message (a single number goes under metrics)", path, where(fd), fd.Kind())
	}
	return obj, nil
}

// get follows ref in m: the value and whether m has it. A field without
// presence (a proto3 scalar) is there even at its zero, except an empty
// string, which would make an empty segment.
func (ref *fieldRef) get(m protoreflect.Message) (protoreflect.Value, protoreflect.FieldDescriptor, bool) {
	var v protoreflect.Value
	var fd protoreflect.FieldDescriptor
	for i, st := range ref.steps {
		fd = st.fd
		last := i == len(ref.steps)-1
		if fd.IsMap() && st.key == "" { // metrics_object: the map itself
			v = m.Get(fd)
			return v, fd, v.Map().Len() > 0
		}
		if fd.IsMap() {
			mv := m.Get(fd).Map().Get(protoreflect.ValueOfString(st.key).MapKey())
			if !mv.IsValid() {
				return v, fd, false
			}
			v, fd = mv, fd.MapValue()
		} else {
			if (fd.HasPresence() || fd.Message() != nil) && !fd.IsList() && !m.Has(fd) {
				return v, fd, false
			}
			v = m.Get(fd)
		}
		if !last {
			m = v.Message()
		}
	}
	if fd.Kind() == protoreflect.StringKind && v.String() == "" {
		return v, fd, false
	}
	return v, fd, true
}

func (d *protobufDecoder) Decode(msg *metric.Message, out *metric.Result) error {
	if len(msg.Value) > d.cfg.MaxMessageBytes {
		return metric.Rejectf(metric.ReasonTooLarge, "%d bytes, limit %d", len(msg.Value), d.cfg.MaxMessageBytes)
	}
	// dynamicpb holds 15 to 35 times the size of a real message of
	// repeated {name, value} elements (a Message and a Go map for each),
	// and 100 to 170 times a hostile one's (empty elements of two bytes
	// each): what it would hold is held to protoParseBudgets output
	// budgets, before it is built. Apart from the samples' charges: the
	// parse is gone once they are built (docs/limits.md).
	if limit := protoParseBudgets * out.Budget; out.Budget > 0 && protoParseCost(msg.Value, d.shape, limit) > limit {
		return metric.Rejectf(metric.ReasonOverBudget, "%s: parsed, it would hold more than %d times the output budget of %d bytes for this message", d.md.FullName(), protoParseBudgets, out.Budget)
	}
	m := d.pool.Get().(*dynamicpb.Message)
	defer func() {
		m.Reset() // now, so that a pooled message does not keep the last parse (up to a budget) until the next
		d.pool.Put(m)
	}()
	if err := unmarshal(msg.Value, m); err != nil {
		return metric.Rejectf(ReasonInvalidProtobuf, "%s: %s", d.md.FullName(), strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\u00a0", " "), "proto: "))
	}

	ts, err := d.time(msg, m)
	if err != nil {
		return err
	}
	var buf [256]byte
	b := d.paths.Builder(buf[:0])
	for i := 0; i < d.at; i++ {
		p := &d.tmpl.parts[i]
		if p.alts == nil {
			b = b.WriteString(p.literal)
			continue
		}
		found := false
		for k := range d.refs[i] {
			if v, fd, ok := d.refs[i][k].get(m); ok {
				b, found = writeProtoValue(b, v, fd), true
				break
			}
		}
		if !found && !p.optional {
			return metric.Rejectf(ReasonMissingField, "no value for %s", p.text)
		}
	}
	var tags []byte
	if !d.tags.empty() {
		var tagBuf [256]byte
		tags = d.tags.suffix(tagBuf[:0], out, b.Bytes(), func(i, k int, _ []string) (string, bool) {
			if k >= len(d.tagRefs[i]) {
				return "", false
			}
			v, fd, ok := d.tagRefs[i][k].get(m)
			if !ok {
				return "", false
			}
			return protoTagText(v, fd), true
		})
		if err := out.Charge(len(tags)); err != nil {
			return err
		}
	}
	head := protoHead{b: b, tags: tags}
	nSamples, nRejected := len(out.Samples), len(out.Rejected)
	fail := func(err error) error {
		out.Samples, out.Rejected = out.Samples[:nSamples], out.Rejected[:nRejected]
		return err
	}
	for i := range d.metrics {
		pm := &d.metrics[i]
		v, fd, ok := pm.ref.get(m)
		if !ok {
			if err := d.reject(out, head, pm.name, ReasonMissingField); err != nil {
				return fail(err)
			}
			continue
		}
		if err := d.sample(out, head, pm.name, v, fd, ts); err != nil {
			return fail(err)
		}
	}
	for _, obj := range d.objects {
		if err := d.objectSamples(out, head, m, obj, ts); err != nil {
			return fail(err)
		}
	}
	return nil
}

// unmarshal reads b into m. protobuf-go v1.36 panics on a map entry whose
// key comes twice, the second time with the wrong wire type (its slow path,
// which dynamicpb takes, keeps the failed read's zero key; FuzzProtobuf
// found it): that is bad input like any other, not a crash.
func unmarshal(b []byte, m *dynamicpb.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cannot parse: %v", p)
		}
	}()
	return proto.UnmarshalOptions{Merge: true}.Unmarshal(b, m)
}

// time is the message's timestamp in seconds.
func (d *protobufDecoder) time(msg *metric.Message, m protoreflect.Message) (float64, error) {
	v, fd, ok := d.ts.get(m)
	if ok && d.tsKind == tsNumber && d.numberIsZero(v, fd) {
		ok = false // proto3's zero: no time given
	}
	if !ok {
		if d.cfg.Timestamp.Missing == MissingReceiveTime {
			return receiveTime(msg), nil
		}
		return 0, metric.Rejectf(metric.ReasonBadTimestamp, "no %s", d.cfg.Timestamp.Field)
	}
	switch d.tsKind {
	case tsMessage:
		tm := v.Message()
		fields := tm.Descriptor().Fields()
		secs := tm.Get(fields.ByName("seconds")).Int()
		nanos := tm.Get(fields.ByName("nanos")).Int()
		if secs < 0 || nanos < 0 || nanos >= 1e9 {
			return 0, metric.Rejectf(metric.ReasonBadTimestamp, "%s %d.%09d out of range", d.cfg.Timestamp.Field, secs, nanos)
		}
		return float64(secs) + float64(nanos)/1e9, nil
	case tsString:
		q := strconv.AppendQuote(nil, v.String())
		return JSONTimestamp(q, jsonscan.String, UnitRFC3339)
	}
	var raw []byte
	switch fd.Kind() {
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, metric.Rejectf(metric.ReasonBadTimestamp, "%s is %g", d.cfg.Timestamp.Field, f)
		}
		raw = strconv.AppendFloat(nil, f, 'g', -1, 64)
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		raw = strconv.AppendUint(nil, v.Uint(), 10)
	default:
		raw = strconv.AppendInt(nil, v.Int(), 10)
	}
	return NumericTimestamp(raw, d.cfg.Timestamp.Unit)
}

func (d *protobufDecoder) numberIsZero(v protoreflect.Value, fd protoreflect.FieldDescriptor) bool {
	switch fd.Kind() {
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return v.Float() == 0
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return v.Uint() == 0
	}
	return v.Int() == 0
}

// numberValue is a numeric field's value as a sample value, or why it is none.
func (d *protobufDecoder) numberValue(v protoreflect.Value, fd protoreflect.FieldDescriptor) (float64, string) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return d.cfg.Values.BoolValue(v.Bool())
	case protoreflect.FloatKind:
		return finiteValue(shortestFloat32(float32(v.Float())))
	case protoreflect.DoubleKind:
		return finiteValue(v.Float())
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return float64(v.Uint()), ""
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return float64(v.Int()), ""
	}
	return 0, metric.ReasonNotANumber
}

// protoHead is what every metric of one message shares: the path up to
// {metric}, and the message's tags (rendered once).
type protoHead struct {
	b    PathBuilder
	tags []byte
}

// path renders the path of the metric called name after head.
func (d *protobufDecoder) path(head protoHead, name string) (PathBuilder, string) {
	n := len(head.b.buf)
	b := head.b.WriteString(name)
	if len(b.buf) == n {
		return b, metric.ReasonBadPath
	}
	if d.tail != "" {
		b = b.WriteString(d.tail)
	}
	b = b.TagSuffix(head.tags)
	return b, b.Check()
}

func (d *protobufDecoder) reject(out *metric.Result, head protoHead, name, reason string) error {
	b, _ := d.path(head, name)
	out.Reject(b.String(), reason)
	return out.Over()
}

func (d *protobufDecoder) sample(out *metric.Result, head protoHead, name string, v protoreflect.Value, fd protoreflect.FieldDescriptor, ts float64) error {
	b, reason := d.path(head, name)
	if reason == "" {
		var value float64
		if value, reason = d.numberValue(v, fd); reason == "" {
			return out.Add(metric.Sample{Path: out.String(b.Bytes()), Time: ts, Value: value})
		}
	}
	out.Reject(b.String(), reason)
	return out.Over()
}

// objectSamples adds the metrics of metrics_object, in a stable order:
// a map's by key, a list's and a message's by position.
func (d *protobufDecoder) objectSamples(out *metric.Result, head protoHead, m protoreflect.Message, obj *protoObject, ts float64) error {
	v, fd, ok := obj.ref.get(m)
	if !ok {
		return nil // an empty map or list, or an unset message: no metrics
	}
	switch obj.kind {
	case objectMap:
		mp := v.Map()
		keys := make([]string, 0, mp.Len())
		mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k.String())
			return true
		})
		if err := out.Charge(len(keys) * 16); err != nil { // the key list
			return err
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := d.sample(out, head, k, mp.Get(protoreflect.ValueOfString(k).MapKey()), fd.MapValue(), ts); err != nil {
				return err
			}
		}
	case objectList:
		list := v.List()
		for i := range list.Len() {
			el := list.Get(i).Message()
			name := el.Get(obj.name).String()
			if obj.value.HasPresence() && !el.Has(obj.value) {
				if err := d.reject(out, head, name, ReasonMissingField); err != nil {
					return err
				}
				continue
			}
			if err := d.sample(out, head, name, el.Get(obj.value), obj.value, ts); err != nil {
				return err
			}
		}
	case objectMessage:
		sub := v.Message()
		fields := sub.Descriptor().Fields()
		for i := range fields.Len() {
			f := fields.Get(i)
			if f.IsList() || f.IsMap() || !isNumeric(f.Kind()) || (f.HasPresence() && !sub.Has(f)) {
				continue
			}
			if err := d.sample(out, head, string(f.Name()), sub.Get(f), f, ts); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeProtoValue writes a scalar field as one path segment.
// protoTagText is a scalar field's value as tag text, written as
// writeProtoValue writes it into a path.
func protoTagText(v protoreflect.Value, fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.FormatInt(int64(v.Enum()), 10)
	case protoreflect.FloatKind:
		return strconv.FormatFloat(v.Float(), 'f', -1, 32)
	case protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	}
	return strconv.FormatInt(v.Int(), 10)
}

func writeProtoValue(b PathBuilder, v protoreflect.Value, fd protoreflect.FieldDescriptor) PathBuilder {
	var buf [32]byte
	switch fd.Kind() {
	case protoreflect.StringKind:
		return b.WriteSegment(unsafeBytes(v.String()))
	case protoreflect.BoolKind:
		return b.WriteSegment(strconv.AppendBool(buf[:0], v.Bool()))
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return b.WriteSegment(unsafeBytes(string(ev.Name())))
		}
		return b.WriteSegment(strconv.AppendInt(buf[:0], int64(v.Enum()), 10))
	case protoreflect.FloatKind:
		return b.WriteSegment(strconv.AppendFloat(buf[:0], v.Float(), 'f', -1, 32))
	case protoreflect.DoubleKind:
		return b.WriteSegment(strconv.AppendFloat(buf[:0], v.Float(), 'f', -1, 64))
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return b.WriteSegment(strconv.AppendUint(buf[:0], v.Uint(), 10))
	}
	return b.WriteSegment(strconv.AppendInt(buf[:0], v.Int(), 10))
}
