package decoders

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/shovel-metrics/shovel/router/metric"
)

func init() {
	Register("voltha-event", "VOLTHA 2.x protobuf Events (voltha.events): KpiEvent2, KpiEvent3 and the legacy KpiEvent; device, RPC and config events skipped", newVolthaEvent)
}

// Reasons of the voltha-event decoder.
const (
	// ReasonInvalidProtobuf rejects a message that is not a well-formed
	// protobuf Event: truncated, a bad tag, a length past the end.
	ReasonInvalidProtobuf = "invalid_protobuf"
	// ReasonNotKPI rejects a device, RPC or config event when non_kpi is
	// "reject"; by default they are skipped.
	ReasonNotKPI = "not_kpi"
)

// What the voltha-event decoder does with events that carry no KPIs.
const (
	NonKPISkip   = "skip"
	NonKPIReject = "reject"
)

// The skips, made once: a busy voltha.events topic carries many device
// events, and a skip should cost no allocation.
var (
	skipConfigEvent = metric.Skip("config_event")
	skipDeviceEvent = metric.Skip("device_event")
	skipRPCEvent    = metric.Skip("rpc_event")
	skipNoEvent     = metric.Skip("no_event")
)

// DefaultVolthaEventPath lays out the KPIs of a title that
// DefaultVolthaEventPaths does not know: the OLT's port label or the
// OMCI managed entity, when the entry has one, tells instances apart.
const DefaultVolthaEventPath = "voltha.{device_id}.{title}.{context.portlabel?}.{metrics.entity_id?}.{metric}"

// DefaultVolthaEventPaths lays out, per title, what the openolt and
// openonu adapters send (docs/voltha-events.md has an example of each):
// the device, the title, whatever tells the title's instances on one
// device apart (a port, an ONU on a PON, a GEM port, an OMCI managed
// entity and its direction), and the metric.
func DefaultVolthaEventPaths() map[string]string {
	const (
		port  = "voltha.{device_id}.{title}.{context.portlabel|context.portno}.{metric}"
		onu   = "voltha.{device_id}.{title}.pon-{metrics.intfId}.onu-{metrics.onuId}.{metric}"
		gem   = "voltha.{device_id}.{title}.pon-{metrics.intfId}.gem-{metrics.gemId|context.gemId}.{metric}"
		omci  = "voltha.{device_id}.{title}.{metrics.entity_id}.{metric}"
		other = DefaultVolthaEventPath
	)
	return map[string]string{
		// openolt, since 2021
		"NNIStats": port, "PONStats": port, "ONUStats": onu, "GEMStats": gem, "OnuRxPowerStats": onu,
		// openolt, before 2021
		"ETHERNET_NNI": port, "PON_OLT": port,
		// openonu
		"PON_Optical":                  "voltha.{device_id}.{title}.{metrics.ani_g_instance_id?}.{metric}",
		"UNI_Status":                   "voltha.{device_id}.{title}.uni-{metrics.uni_port_no}.{metric}",
		"Ethernet_Bridge_Port_History": "voltha.{device_id}.{title}.{metrics.entity_id}.{direction}.{metric}",
		"Ethernet_UNI_History":         omci,
		"FEC_History":                  omci,
		"GEM_Port_History":             omci,
		"slice":                        other,
	}
}

// DefaultVolthaIdentifiers are the entries of a metrics map that name what
// is measured rather than measure it: the adapters send them as floats
// beside the counters. They are not samples by default (each would be a
// series of its own that never changes, or, for interval_end_time and
// Timestamp, one that is just the clock) but template fields.
func DefaultVolthaIdentifiers() []string {
	return []string{
		"intfId", "onuId", "gemId", "Timestamp", // openolt
		"class_id", "me_class_id", "entity_id", "parent_class_id", "parent_entity_id", // openonu
		"uni_port_no", "interval_end_time", "upstream", "ani_g_instance_id",
	}
}

// perInterval are the entries that change every interval: never a path
// segment (nor a tag), or every interval would start a new series.
var perInterval = []string{"interval_end_time", "Timestamp"}

// VolthaEventConfig configures the voltha-event decoder.
type VolthaEventConfig struct {
	// MaxMessageBytes is the largest message decoded.
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	// Path is the path template of a title Paths does not name.
	Path string `mapstructure:"path"`
	// Paths are path templates per title, added to (or replacing entries
	// of) DefaultVolthaEventPaths. Titles compare case-insensitively:
	// YAML keys are folded to lower case on load.
	Paths map[string]string `mapstructure:"paths"`
	// Identifiers are the metrics-map entries that are template fields
	// ({metrics.<name>}) rather than samples; they replace
	// DefaultVolthaIdentifiers.
	Identifiers []string `mapstructure:"identifiers"`
	// EmitIdentifiers makes the identifiers samples too.
	EmitIdentifiers bool `mapstructure:"emit_identifiers"`
	// NonKPI is what happens to device, RPC and config events: "skip"
	// (counted by reason, acknowledged, not logged) or "reject" (counted,
	// logged and dead-lettered as not_kpi).
	NonKPI string `mapstructure:"non_kpi"`
	// MissingTimestamp is what an entry with no time at all gets:
	// "reject" or "receive_time".
	MissingTimestamp string `mapstructure:"missing_timestamp"`
	// Tags maps Graphite tag keys to the template fields of each entry
	// (or constants), for every title: see tagTemplate. Empty for
	// untagged paths. A per-interval metric cannot be a tag.
	Tags map[string]string `mapstructure:"tags"`
	// Sanitize configures the path sanitiser.
	Sanitize PathConfig `mapstructure:"sanitize"`
}

// DefaultVolthaEventConfig returns the voltha-event decoder's defaults.
func DefaultVolthaEventConfig() VolthaEventConfig {
	return VolthaEventConfig{
		MaxMessageBytes:  1 << 20,
		Path:             DefaultVolthaEventPath,
		Paths:            lowerKeys(DefaultVolthaEventPaths()),
		Identifiers:      DefaultVolthaIdentifiers(),
		NonKPI:           NonKPISkip,
		MissingTimestamp: MissingReject,
		Sanitize:         DefaultPathConfig(),
	}
}

// lowerKeys returns m keyed by lower-cased keys: the config's defaults as
// the YAML loader folds keys, so that a title set in YAML replaces the
// default of that title rather than racing it in newVolthaEvent (which
// folds both to one title, in map order).
func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// Validate checks the config, naming the offending key.
func (c VolthaEventConfig) Validate() error {
	var errs []error
	if c.MaxMessageBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_message_bytes must be positive, got %d", c.MaxMessageBytes))
	}
	if _, err := parseVolthaTemplate(c.Path); err != nil {
		errs = append(errs, fmt.Errorf("path: %q: %w", c.Path, err))
	}
	titles := make([]string, 0, len(c.Paths))
	for title := range c.Paths {
		titles = append(titles, title)
	}
	slices.Sort(titles)
	for _, title := range titles {
		if _, err := parseVolthaTemplate(c.Paths[title]); err != nil {
			errs = append(errs, fmt.Errorf("paths.%s: %q: %w", title, c.Paths[title], err))
		}
	}
	for i, id := range c.Identifiers {
		if id == "" {
			errs = append(errs, fmt.Errorf("identifiers[%d]: empty", i))
		}
	}
	if c.NonKPI != NonKPISkip && c.NonKPI != NonKPIReject {
		errs = append(errs, fmt.Errorf("non_kpi: must be %q or %q, got %q", NonKPISkip, NonKPIReject, c.NonKPI))
	}
	if err := checkMissing(c.MissingTimestamp); err != nil {
		errs = append(errs, fmt.Errorf("missing_timestamp: %w", err))
	}
	if _, err := parseTagTemplate(c.Tags, volthaFieldCheck); err != nil {
		errs = append(errs, err)
	}
	if err := c.Sanitize.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func newVolthaEvent(decode metric.DecodeConfig, _ metric.Env) (metric.Decoder, error) {
	cfg := DefaultVolthaEventConfig()
	if decode != nil {
		if err := decode(&cfg); err != nil {
			return nil, fmt.Errorf("voltha-event: config: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("voltha-event: %w", err)
	}
	d := &volthaEvent{cfg: cfg, paths: NewPathSanitizer(cfg.Sanitize), byTitle: map[string]*volthaTemplate{},
		ids: map[string]bool{}}
	d.fallback, _ = parseVolthaTemplate(cfg.Path) // checked by Validate
	d.tags, _ = parseTagTemplate(cfg.Tags, volthaFieldCheck)
	for title, p := range cfg.Paths {
		t, _ := parseVolthaTemplate(p)
		d.byTitle[strings.ToLower(title)] = t
	}
	for _, id := range cfg.Identifiers {
		d.ids[id] = true
		d.idHint[idHash([]byte(id))] = true
	}
	return d, nil
}

// volthaEvent decodes VOLTHA's protobuf Event messages straight from the
// wire, by field number (docs/voltha-events.md has the table): no
// generated code, no reflection, and no allocation per sample.
//
// The decoder holds only immutable config, so one value serves all workers.
type volthaEvent struct {
	cfg      VolthaEventConfig
	paths    *PathSanitizer
	fallback *volthaTemplate
	byTitle  map[string]*volthaTemplate // by lower-cased title
	tags     tagTemplate
	ids      map[string]bool
	// idHint[idHash(name)] is false when name is surely no identifier: a
	// counter is told from an identifier without a map lookup.
	idHint [256]bool
}

func idHash(name []byte) byte {
	if len(name) == 0 {
		return 0
	}
	return byte(len(name)) ^ name[0]<<2 ^ name[len(name)-1]
}

// isIdentifier reports whether name is one of the identifiers.
func (d *volthaEvent) isIdentifier(name []byte) bool {
	return d.idHint[idHash(name)] && d.ids[string(name)]
}

var (
	_ metric.Decoder      = (*volthaEvent)(nil)
	_ metric.CheckedPaths = (*volthaEvent)(nil)
	_ metric.MessageLimit = (*volthaEvent)(nil)
)

// PathsChecked is true: every path comes out of the sanitiser and its
// Check (FuzzVolthaEvent asserts it).
func (d *volthaEvent) PathsChecked() bool { return true }

// MaxMessageBytes is max_message_bytes (metric.MessageLimit).
func (d *volthaEvent) MaxMessageBytes() int { return d.cfg.MaxMessageBytes }

// Field numbers, from voltha-protos' events.proto.
const (
	evHeader      = 1
	evConfig      = 2
	evKPI         = 3 // legacy KpiEvent
	evKPI2        = 4
	evDevice      = 5
	evRPC         = 6
	evKPI3        = 7
	hdrRaisedTS   = 6
	kpiTS         = 2
	kpiSliceData  = 3 // KpiEvent2/3
	kpiPrefixes   = 3 // legacy KpiEvent
	infoMetadata  = 1
	infoMetrics   = 2
	metaTitle     = 1
	metaTS        = 2
	metaLogical   = 3
	metaSerial    = 4
	metaDevice    = 5
	metaContext   = 6
	metaUUID      = 7
	pairsMetrics  = 1 // MetricValuePairs
	mapKey        = 1
	mapValue      = 2
	tsSeconds     = 1
	tsNanos       = 2
	maxContextKVs = 8
)

// wireError turns a protowire error into the whole-message rejection.
// protobuf's messages hold a non-breaking space (to stop programs from
// matching them); a log line wants a plain one.
func wireError(what string, n int) error {
	msg := strings.TrimPrefix(strings.ReplaceAll(protowire.ParseError(n).Error(), "\u00a0", " "), "proto: ")
	return metric.Rejectf(ReasonInvalidProtobuf, "%s: %s", what, msg)
}

// volthaEventBody is what the top level of an Event holds.
type volthaEventBody struct {
	header []byte
	kind   protowire.Number // the oneof member met last (protobuf's rule), 0 for none
	body   []byte
}

func (d *volthaEvent) Decode(msg *metric.Message, out *metric.Result) error {
	if len(msg.Value) > d.cfg.MaxMessageBytes {
		return metric.Rejectf(metric.ReasonTooLarge, "%d bytes, limit %d", len(msg.Value), d.cfg.MaxMessageBytes)
	}
	var ev volthaEventBody
	b := msg.Value
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return wireError("event", n)
		}
		b = b[n:]
		if typ == protowire.BytesType && num >= evHeader && num <= evKPI3 {
			v, n := consumeBytes(b)
			if n < 0 {
				return wireError("event", n)
			}
			b = b[n:]
			if num == evHeader {
				ev.header = v
			} else {
				ev.kind, ev.body = num, v
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return wireError("event", n)
		}
		b = b[n:]
	}
	var skip error
	switch ev.kind {
	case evKPI, evKPI2, evKPI3:
	case evConfig:
		skip = skipConfigEvent
	case evDevice:
		skip = skipDeviceEvent
	case evRPC:
		skip = skipRPCEvent
	default:
		skip = skipNoEvent
	}
	if skip != nil {
		if d.cfg.NonKPI == NonKPIReject {
			reason, _ := metric.SkipReason(skip)
			return metric.Rejectf(ReasonNotKPI, "%s", reason)
		}
		return skip
	}
	raised, err := raisedTS(ev.header)
	if err != nil {
		return err
	}
	nSamples, nRejected := len(out.Samples), len(out.Rejected)
	if ev.kind == evKPI {
		err = d.legacy(msg, ev.body, raised, out)
	} else {
		err = d.kpi2(msg, ev.body, raised, out)
	}
	if err != nil {
		out.Samples, out.Rejected = out.Samples[:nSamples], out.Rejected[:nRejected]
		return err
	}
	return nil
}

// raisedTS reads the header's raised_ts in seconds; 0 when absent.
func raisedTS(header []byte) (float64, error) {
	var ts []byte
	for b := header; len(b) > 0; {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return 0, wireError("header", n)
		}
		b = b[n:]
		if num == hdrRaisedTS && typ == protowire.BytesType {
			v, n := consumeBytes(b)
			if n < 0 {
				return 0, wireError("header", n)
			}
			ts, b = v, b[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return 0, wireError("header", n)
		}
		b = b[n:]
	}
	var secs, nanos int64
	for b := ts; len(b) > 0; {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return 0, wireError("raised_ts", n)
		}
		b = b[n:]
		if (num == tsSeconds || num == tsNanos) && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, wireError("raised_ts", n)
			}
			b = b[n:]
			if num == tsSeconds {
				secs = int64(v)
			} else {
				nanos = int64(int32(v))
			}
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return 0, wireError("raised_ts", n)
		}
		b = b[n:]
	}
	if secs < 0 || nanos < 0 || nanos >= 1e9 {
		return 0, metric.Rejectf(metric.ReasonBadTimestamp, "raised_ts %d.%09d out of range", secs, nanos)
	}
	return float64(secs) + float64(nanos)/1e9, nil
}

// volthaSeconds turns a VOLTHA timestamp into seconds since the epoch.
// The field is documented as seconds, and openolt writes seconds, but
// openonu writes nanoseconds (and openolt did, in KpiEvent2.ts, before
// 3.x): the unit is read off the magnitude. Seconds reach 1e11 in the
// year 5138, so anything from 1e11 up is taken as ms, from 1e14 as µs,
// from 1e17 as ns. 0 means absent (proto3's default); ok is false for a
// value Carbon cannot store.
func volthaSeconds(v float64) (float64, bool) {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
		return 0, false
	case v >= 1e17:
		// A float64 of nanoseconds is off by up to 128 ns already: to
		// the microsecond, the division lands on the time meant
		// (…552.25 rather than …552.2499998).
		v = math.Round(v/1e3) / 1e6
	case v >= 1e14:
		v /= 1e6
	case v >= 1e11:
		v /= 1e3
	}
	return v + 0, true
}

// eventTime is the time of entries with no ts of their own: the event's
// ts, else the header's raised_ts, else missing_timestamp's.
func (d *volthaEvent) eventTime(msg *metric.Message, eventTS, raised float64) (float64, error) {
	if eventTS != 0 {
		ts, ok := volthaSeconds(eventTS)
		if !ok {
			return 0, metric.Rejectf(metric.ReasonBadTimestamp, "event ts %g out of range", eventTS)
		}
		return ts, nil
	}
	if raised != 0 {
		return raised, nil
	}
	if d.cfg.MissingTimestamp == MissingReceiveTime {
		return receiveTime(msg), nil
	}
	return 0, metric.Rejectf(metric.ReasonBadTimestamp, "no metadata ts, event ts or raised_ts")
}

// kpi2 decodes a KpiEvent2 or KpiEvent3: {1 type, 2 ts, 3 repeated slice_data}.
func (d *volthaEvent) kpi2(msg *metric.Message, body []byte, raised float64, out *metric.Result) error {
	// First pass: the event's ts, wherever it is, and the structure.
	var eventTS float64
	for b := body; len(b) > 0; {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return wireError("kpi_event", n)
		}
		b = b[n:]
		if num == kpiTS && typ == protowire.Fixed64Type {
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return wireError("kpi_event", n)
			}
			eventTS, b = math.Float64frombits(v), b[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return wireError("kpi_event", n)
		}
		b = b[n:]
	}
	fallback, fallbackErr := d.eventTime(msg, eventTS, raised)
	for b := body; len(b) > 0; {
		num, typ, n := consumeTag(b)
		b = b[n:] // checked by the first pass
		if num == kpiSliceData && typ == protowire.BytesType {
			v, n := consumeBytes(b)
			b = b[n:]
			if err := d.entry(v, fallback, fallbackErr, out); err != nil {
				return err
			}
			continue
		}
		b = b[protowire.ConsumeFieldValue(num, typ, b):]
	}
	return nil
}

// volthaMeta is what an entry's MetricMetaData holds, as slices of the
// message: kept on the stack.
type volthaMeta struct {
	title, deviceID, logicalDeviceID, serialNo, uuid []byte
	ts                                               float64
	raw                                              []byte // the whole metadata, for context past ctx
	ctx                                              [maxContextKVs]volthaKV
	nctx                                             int
	moreCtx                                          bool
}

type volthaKV struct{ k, v []byte }

func parseVolthaMeta(b []byte, m *volthaMeta) error {
	m.raw = b
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return wireError("metadata", n)
		}
		b = b[n:]
		switch {
		case num == metaTS && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return wireError("metadata", n)
			}
			m.ts, b = math.Float64frombits(v), b[n:]
			continue
		case typ == protowire.BytesType && num >= metaTitle && num <= metaUUID:
			v, n := consumeBytes(b)
			if n < 0 {
				return wireError("metadata", n)
			}
			b = b[n:]
			switch num {
			case metaTitle:
				m.title = v
			case metaLogical:
				m.logicalDeviceID = v
			case metaSerial:
				m.serialNo = v
			case metaDevice:
				m.deviceID = v
			case metaUUID:
				m.uuid = v
			case metaContext:
				k, val, _, _, err := mapEntry(v, "context")
				if err != nil {
					return err
				}
				if m.nctx == len(m.ctx) {
					m.moreCtx = true
					continue
				}
				m.ctx[m.nctx] = volthaKV{k, val}
				m.nctx++
			}
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return wireError("metadata", n)
		}
		b = b[n:]
	}
	return nil
}

// context returns the last value of key in the context map, as protobuf
// keeps the last of duplicate map keys.
func (m *volthaMeta) context(key string) ([]byte, bool) {
	if m.moreCtx {
		var found []byte
		ok := false
		for b := m.raw; len(b) > 0; {
			num, typ, n := consumeTag(b)
			b = b[n:] // checked by parseVolthaMeta
			if num == metaContext && typ == protowire.BytesType {
				v, n := consumeBytes(b)
				b = b[n:]
				if k, val, _, _, _ := mapEntry(v, "context"); string(k) == key {
					found, ok = val, true
				}
				continue
			}
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
		}
		return found, ok
	}
	for i := m.nctx - 1; i >= 0; i-- {
		if string(m.ctx[i].k) == key {
			return m.ctx[i].v, true
		}
	}
	return nil, false
}

// mapEntry reads a map entry {1 key, 2 value}: the key's bytes, and the
// value as bytes (for a string or message value) or as a number with
// its wire type. A missing key is "" and a missing value its zero, as
// protobuf defines them.
func mapEntry(b []byte, what string) (key, val []byte, num uint64, typ protowire.Type, err error) {
	// The shape every encoder writes: a short key (field 1), then the
	// value (field 2) and nothing else. Read without the general loop, it
	// costs a third as much; anything else takes the loop.
	if len(b) >= 2 && b[0] == 0x0a && b[1] < 0x80 && int(b[1])+2 <= len(b) {
		key, rest := b[2:2+b[1]], b[2+b[1]:]
		switch {
		case len(rest) == 5 && rest[0] == 0x15: // fixed32: a float
			return key, nil, uint64(binary.LittleEndian.Uint32(rest[1:])), protowire.Fixed32Type, nil
		case len(rest) == 9 && rest[0] == 0x11: // fixed64: a double
			return key, nil, binary.LittleEndian.Uint64(rest[1:]), protowire.Fixed64Type, nil
		case len(rest) >= 2 && rest[0] == 0x12 && rest[1] < 0x80 && len(rest) == 2+int(rest[1]): // a short string
			return key, rest[2:], 0, protowire.BytesType, nil
		}
	}
	typ = -1
	for len(b) > 0 {
		f, t, n := consumeTag(b)
		if n < 0 {
			return nil, nil, 0, 0, wireError(what, n)
		}
		b = b[n:]
		switch {
		case f == mapKey && t == protowire.BytesType:
			v, n := consumeBytes(b)
			if n < 0 {
				return nil, nil, 0, 0, wireError(what, n)
			}
			key, b = v, b[n:]
			continue
		case f == mapValue:
			typ = t
			switch t {
			case protowire.BytesType:
				val, n = consumeBytes(b)
			case protowire.Fixed32Type:
				var v uint32
				v, n = protowire.ConsumeFixed32(b)
				num = uint64(v)
			case protowire.Fixed64Type:
				num, n = protowire.ConsumeFixed64(b)
			case protowire.VarintType:
				num, n = protowire.ConsumeVarint(b)
			default:
				n = protowire.ConsumeFieldValue(f, t, b)
			}
			if n < 0 {
				return nil, nil, 0, 0, wireError(what, n)
			}
			b = b[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(f, t, b); n < 0 {
			return nil, nil, 0, 0, wireError(what, n)
		}
		b = b[n:]
	}
	return key, val, num, typ, nil
}

// metricValue is a metrics-map value as a sample value, or the reason it
// is none. float32 (KpiEvent2, KpiEvent) becomes the float64 of its
// shortest decimal, so that Carbon is written 24.54, not
// 24.540000915527344; KpiEvent3's double is taken as it is, and its
// uint64 (voltha-protos 5.6.8) converted. A value of another wire type
// is not a number; a missing one is protobuf's zero.
func metricValue(num uint64, typ protowire.Type) (float64, string) {
	var v float64
	switch typ {
	case -1:
		return 0, ""
	case protowire.Fixed32Type:
		v = shortestFloat32(math.Float32frombits(uint32(num)))
	case protowire.Fixed64Type:
		v = math.Float64frombits(num)
	case protowire.VarintType:
		return float64(num), ""
	default:
		return 0, metric.ReasonNotANumber
	}
	return finiteValue(v)
}

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// shortestFloat32 returns the float64 nearest to the shortest decimal
// that reads back as f (strconv.FormatFloat(float64(f), 'g', -1, 32)),
// without allocating: the value a person who wrote f meant.
func shortestFloat32(f float32) float64 {
	d := float64(f)
	if d == math.Trunc(d) && math.Abs(d) <= 1<<24 || math.IsNaN(d) || math.IsInf(d, 0) {
		return d // an integer a float32 holds exactly is its own shortest decimal
	}
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], d, 'e', -1, 32) // [-]d[.ddd]e±dd
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var mant uint64
	exp, i := 0, 0
	for ; i < len(s) && s[i] != 'e'; i++ {
		if s[i] == '.' {
			continue
		}
		mant = mant*10 + uint64(s[i]-'0')
		if i > 1 {
			exp--
		}
	}
	e, err := strconv.Atoi(unsafe.String(&s[i+1], len(s)-i-1))
	if err != nil { // cannot happen: AppendFloat's own format
		return d
	}
	exp += e
	// Both mant (at most 9 digits) and 10^|exp| are exact float64s, so one
	// multiplication or division rounds correctly (Clinger's fast path).
	var v float64
	switch {
	case exp >= 0 && exp < len(pow10):
		v = float64(mant) * pow10[exp]
	case exp < 0 && -exp < len(pow10):
		v = float64(mant) / pow10[-exp]
	default: // beyond the fast path: tiny or huge values
		s := strconv.AppendFloat(buf[:0], d, 'g', -1, 32)
		v, _ = strconv.ParseFloat(unsafe.String(&s[0], len(s)), 64)
		return v
	}
	if neg {
		v = -v
	}
	return v
}

// entry decodes one MetricInformation: {1 metadata, 2 metrics map}.
func (d *volthaEvent) entry(b []byte, fallback float64, fallbackErr error, out *metric.Result) error {
	var metaRaw []byte
	hasMetrics := false
	for p := b; len(p) > 0; {
		num, typ, n := consumeTag(p)
		if n < 0 {
			return wireError("slice_data", n)
		}
		p = p[n:]
		hasMetrics = hasMetrics || num == infoMetrics && typ == protowire.BytesType
		if num == infoMetadata && typ == protowire.BytesType {
			v, n := consumeBytes(p)
			if n < 0 {
				return wireError("slice_data", n)
			}
			metaRaw, p = v, p[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, p); n < 0 {
			return wireError("slice_data", n)
		}
		p = p[n:]
	}
	var meta volthaMeta
	if err := parseVolthaMeta(metaRaw, &meta); err != nil {
		return err
	}
	ts, tsErr := fallback, fallbackErr
	if meta.ts != 0 {
		var ok bool
		if ts, ok = volthaSeconds(meta.ts); ok {
			tsErr = nil
		} else {
			tsErr = metric.Rejectf(metric.ReasonBadTimestamp, "metadata ts %g out of range", meta.ts)
		}
	}
	if !hasMetrics {
		// Nothing to name: rendering the path and tags anyway cost a
		// microsecond per entry, and an entry can be two bytes (a 1 MB
		// message of empty entries took 0.6 s).
		return nil
	}
	t := d.template(meta.title)
	src := volthaSource{meta: &meta, entry: b}
	var buf [256]byte
	head, missing := t.render(d.paths.Builder(buf[:0]), &src)
	// The head is charged once for its expansion, as slice_data's is
	// (see sliceDataEntry), and again in each metric's path.
	if err := out.Charge(len(head.Bytes())); err != nil {
		return err
	}
	var tags []byte
	if !d.tags.empty() {
		var tagBuf [256]byte
		tags = d.tags.suffix(tagBuf[:0], out, head.Bytes(), func(_, _ int, f []string) (string, bool) {
			return src.tagText(volthaRefOf(f))
		})
		if err := out.Charge(len(tags)); err != nil {
			return err
		}
	}
	reason := ""
	switch {
	case missing != "":
		reason = ReasonMissingField
	case tsErr != nil:
		reason = metric.ReasonOf(tsErr)
	}
	for p := b; len(p) > 0; {
		num, typ, n := consumeTag(p)
		p = p[n:] // checked above
		if num != infoMetrics || typ != protowire.BytesType {
			p = p[protowire.ConsumeFieldValue(num, typ, p):]
			continue
		}
		v, n := consumeBytes(p)
		p = p[n:]
		name, _, num64, vtyp, err := mapEntry(v, "metrics")
		if err != nil {
			return err
		}
		if !d.cfg.EmitIdentifiers && d.isIdentifier(name) {
			continue // a template field, not a sample
		}
		if err := d.sample(out, head, t.tail, tags, name, num64, vtyp, ts, reason); err != nil {
			return err
		}
	}
	return nil
}

// template returns the path template for title.
func (d *volthaEvent) template(title []byte) *volthaTemplate {
	if len(title) <= 64 {
		var lower [64]byte
		for i, c := range title {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[i] = c
		}
		if t, ok := d.byTitle[string(lower[:len(title)])]; ok {
			return t
		}
	}
	return d.fallback
}

// sample appends the sample of one metric named name at the end of head
// (then tail, then the entry's tags), or rejects it with reason when the
// entry has none to give.
func (d *volthaEvent) sample(out *metric.Result, head PathBuilder, tail string, tags []byte, name []byte, num uint64, typ protowire.Type, ts float64, reason string) error {
	b, plain := head.WriteAllowed(name)
	if !plain {
		n := len(b.buf)
		if b = b.Write(name); len(b.buf) == n {
			reason = metric.ReasonBadPath // nothing left of the name
		}
	}
	if tail != "" {
		b = b.WriteString(tail)
	}
	b = b.TagSuffix(tags)
	if reason == "" {
		reason = b.Check()
	}
	v, vreason := metricValue(num, typ)
	if reason == "" {
		reason = vreason
	}
	if reason != "" {
		out.Reject(b.String(), reason)
		return out.Over()
	}
	return out.Add(metric.Sample{Path: out.String(b.Bytes()), Time: ts, Value: v})
}

// legacy decodes the KpiEvent of VOLTHA 1.x adapters: {1 type, 2 ts
// (float), 3 prefixes map<string, MetricValuePairs{1 metrics}>}, one
// sample per metric named <prefix>.<metric>, as the slice decoder names
// the JSON prefixes shape. Its ts is a float32, which holds a current
// Unix time only to the nearest 128 seconds, so the header's raised_ts,
// exact, is preferred when there is one.
func (d *volthaEvent) legacy(msg *metric.Message, body []byte, raised float64, out *metric.Result) error {
	var ts32 float32
	for b := body; len(b) > 0; {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return wireError("kpi_event", n)
		}
		b = b[n:]
		if num == kpiTS && typ == protowire.Fixed32Type {
			v, n := protowire.ConsumeFixed32(b)
			if n < 0 {
				return wireError("kpi_event", n)
			}
			ts32, b = math.Float32frombits(v), b[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return wireError("kpi_event", n)
		}
		b = b[n:]
	}
	var ts float64
	var err error
	if raised != 0 {
		ts = raised
	} else if ts, err = d.eventTime(msg, float64(ts32), 0); err != nil {
		return err
	}
	for b := body; len(b) > 0; {
		num, typ, n := consumeTag(b)
		b = b[n:] // checked above
		if num != kpiPrefixes || typ != protowire.BytesType {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := consumeBytes(b)
		b = b[n:]
		prefix, pairs, _, _, err := mapEntry(v, "prefixes")
		if err != nil {
			return err
		}
		var buf [256]byte
		head := d.paths.Builder(buf[:0]).Write(prefix).Dot()
		for p := pairs; len(p) > 0; {
			num, typ, n := consumeTag(p)
			if n < 0 {
				return wireError("metrics", n)
			}
			p = p[n:]
			if num != pairsMetrics || typ != protowire.BytesType {
				if n = protowire.ConsumeFieldValue(num, typ, p); n < 0 {
					return wireError("metrics", n)
				}
				p = p[n:]
				continue
			}
			e, n := consumeBytes(p)
			if n < 0 {
				return wireError("metrics", n)
			}
			p = p[n:]
			name, _, num64, vtyp, err := mapEntry(e, "metrics")
			if err != nil {
				return err
			}
			if err := d.sample(out, head, "", nil, name, num64, vtyp, ts, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// volthaRef is one alternative of a placeholder, resolved at start-up.
type volthaRef struct {
	kind volthaField
	key  string // the context or metrics key
}

type volthaField uint8

const (
	vTitle volthaField = iota
	vDeviceID
	vLogicalDeviceID
	vSerialNo
	vUUID
	vContext
	vMetrics
	vDirection
)

var volthaMetaFields = map[string]volthaField{
	"title": vTitle, "device_id": vDeviceID, "logical_device_id": vLogicalDeviceID,
	"serial_no": vSerialNo, "uuid": vUUID, "direction": vDirection,
}

// volthaTemplate is a fieldTemplate with its fields resolved.
type volthaTemplate struct {
	fieldTemplate
	refs [][]volthaRef // per part, its alternatives
	at   int           // index of {metric}
	tail string        // the text after {metric}
}

// parseVolthaTemplate parses a path template whose fields are the
// metadata's (title, device_id, logical_device_id, serial_no, uuid),
// context.<key>, metrics.<key> and direction.
func parseVolthaTemplate(s string) (*volthaTemplate, error) {
	ft, err := parseFieldTemplate(s, volthaFieldCheck)
	if err != nil {
		return nil, err
	}
	t := &volthaTemplate{fieldTemplate: ft, at: ft.metricAt(), tail: ft.tail()}
	for _, p := range ft.parts {
		var refs []volthaRef
		for _, alt := range p.alts {
			switch {
			case len(alt) == 2 && alt[0] == "context":
				refs = append(refs, volthaRef{kind: vContext, key: alt[1]})
			case len(alt) == 2:
				refs = append(refs, volthaRef{kind: vMetrics, key: alt[1]})
			default:
				refs = append(refs, volthaRef{kind: volthaMetaFields[alt[0]]})
			}
		}
		t.refs = append(t.refs, refs)
	}
	return t, nil
}

// volthaFieldCheck vets a field of a path template or a tag.
func volthaFieldCheck(f []string) error {
	switch {
	case len(f) == 1:
		if _, ok := volthaMetaFields[f[0]]; ok {
			return nil
		}
	case len(f) == 2 && f[0] == "context":
		return nil
	case len(f) == 2 && f[0] == "metrics":
		if slices.Contains(perInterval, f[1]) {
			return fmt.Errorf("%s changes every interval: as a path segment or tag it would start a new series each time", f[1])
		}
		return nil
	}
	return fmt.Errorf("unknown field %q (known: title, device_id, logical_device_id, serial_no, uuid, direction, context.<key>, metrics.<key>)", strings.Join(f, "."))
}

// volthaRefOf resolves a checked field.
func volthaRefOf(f []string) volthaRef {
	switch {
	case len(f) == 2 && f[0] == "context":
		return volthaRef{kind: vContext, key: f[1]}
	case len(f) == 2:
		return volthaRef{kind: vMetrics, key: f[1]}
	}
	return volthaRef{kind: volthaMetaFields[f[0]]}
}

// tagText is the value of ref as tag text, if the entry has it.
func (s *volthaSource) tagText(ref volthaRef) (string, bool) {
	var v []byte
	switch ref.kind {
	case vTitle:
		v = s.meta.title
	case vDeviceID:
		v = s.meta.deviceID
	case vLogicalDeviceID:
		v = s.meta.logicalDeviceID
	case vSerialNo:
		v = s.meta.serialNo
	case vUUID:
		v = s.meta.uuid
	case vContext:
		v, _ = s.meta.context(ref.key)
	case vDirection:
		f, ok := s.metric("upstream")
		if !ok {
			return "", false
		}
		if f != 0 {
			return "upstream", true
		}
		return "downstream", true
	case vMetrics:
		f, ok := s.metric(ref.key)
		if !ok {
			return "", false
		}
		return strconv.FormatFloat(f, 'f', -1, 64), true
	}
	// Read only; appended (copied) before the message is reused.
	return unsafe.String(unsafe.SliceData(v), len(v)), len(v) > 0
}

// volthaSource is what an entry's template fields are read from.
type volthaSource struct {
	meta  *volthaMeta
	entry []byte // the MetricInformation, for metrics.<key>
}

// render writes the template up to {metric}; it returns the placeholder
// of a required field the entry lacks, if any.
func (t *volthaTemplate) render(b PathBuilder, src *volthaSource) (PathBuilder, string) {
	missing := ""
	for i := 0; i < t.at; i++ {
		p := &t.parts[i]
		if p.alts == nil {
			b = b.WriteString(p.literal)
			continue
		}
		found := false
		for _, ref := range t.refs[i] {
			var ok bool
			if b, ok = src.write(b, ref); ok {
				found = true
				break
			}
		}
		if !found && !p.optional && missing == "" {
			missing = p.text
		}
	}
	return b, missing
}

// write writes the value of ref, if the entry has it (an empty string
// counts as missing: it would be an empty segment).
func (s *volthaSource) write(b PathBuilder, ref volthaRef) (PathBuilder, bool) {
	var v []byte
	switch ref.kind {
	case vTitle:
		v = s.meta.title
	case vDeviceID:
		v = s.meta.deviceID
	case vLogicalDeviceID:
		v = s.meta.logicalDeviceID
	case vSerialNo:
		v = s.meta.serialNo
	case vUUID:
		v = s.meta.uuid
	case vContext:
		v, _ = s.meta.context(ref.key)
	case vMetrics, vDirection:
		key := ref.key
		if ref.kind == vDirection {
			key = "upstream"
		}
		f, ok := s.metric(key)
		if !ok {
			return b, false
		}
		if ref.kind == vDirection {
			if f != 0 {
				return b.WriteString("upstream"), true
			}
			return b.WriteString("downstream"), true
		}
		var buf [32]byte
		return b.WriteSegment(strconv.AppendFloat(buf[:0], f, 'f', -1, 64)), true
	}
	if len(v) == 0 {
		return b, false
	}
	return b.WriteSegment(v), true
}

// metric returns the finite value of the entry's metric key (the last, as
// protobuf keeps the last of duplicate map keys).
func (s *volthaSource) metric(key string) (float64, bool) {
	var v float64
	found := false
	for p := s.entry; len(p) > 0; {
		num, typ, n := consumeTag(p)
		p = p[n:] // checked by entry
		if num != infoMetrics || typ != protowire.BytesType {
			p = p[protowire.ConsumeFieldValue(num, typ, p):]
			continue
		}
		e, n := consumeBytes(p)
		p = p[n:]
		name, _, num64, vtyp, err := mapEntry(e, "metrics")
		if err != nil || string(name) != key {
			continue
		}
		if f, reason := metricValue(num64, vtyp); reason == "" {
			v, found = f, true
		} else {
			found = false
		}
	}
	return v, found
}

// consumeTag is protowire.ConsumeTag, inlined for the one-byte tags
// (field numbers 1 to 15) that every field of a VOLTHA event has: the
// decoder reads several per metric.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 && b[0] >= 1<<3 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

// consumeBytes is protowire.ConsumeBytes, inlined for lengths below 128,
// which nearly all of a VOLTHA event's strings and entries have.
func consumeBytes(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 {
		if n := int(b[0]) + 1; n <= len(b) {
			return b[1:n:n], n
		}
		return nil, -1 // protowire's truncated, as ConsumeBytes says it
	}
	return protowire.ConsumeBytes(b)
}
