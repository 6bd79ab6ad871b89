package kpi

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// VolthaTopic is the topic VOLTHA 2.x components publish their events to,
// KPIs among them, and the one shovel's default config reads them from.
const VolthaTopic = "voltha.events"

// Formats a Publisher writes.
const (
	// FormatSlice is the JSON slice message of the original VOLTHA.
	FormatSlice = "slice"
	// FormatVolthaEvent is the protobuf Event of VOLTHA 2.x, one
	// KpiEvent2 per event, as the openolt adapter publishes it.
	FormatVolthaEvent = "voltha-event"
)

// Event is one KPI event as the openolt adapter publishes it: an Event
// whose KpiEvent2 holds one MetricInformation (docs/voltha-events.md).
type Event struct {
	// Title names what is measured: NNIStats, PONStats, ...
	Title string
	// DeviceID is the device's id (the OLT's, for the openolt adapter).
	DeviceID string
	// Context tells instances of a title apart ("portlabel": "nni-1048576").
	Context []ContextEntry
	// Metrics are written as float32, as the adapters write them: a
	// counter above 2^24 loses precision, as it does at the source.
	Metrics []Metric
	// Time is the raise time; the metadata's and the event's ts are its
	// Unix seconds, as the openolt adapter writes them.
	Time time.Time
	// SubCategory is the header's EventSubCategory: PON 0, OLT 1, ONT 2,
	// ONU 3, NNI 4, NONE 5.
	SubCategory int
}

// ContextEntry is one entry of a MetricMetaData's context map.
type ContextEntry struct{ Key, Value string }

// Field numbers and enum values of VOLTHA's events.proto.
const (
	eventHeader       = 1
	eventKPI2         = 4
	headerID          = 1
	headerCategory    = 2
	headerSubCategory = 3
	headerType        = 4
	headerTypeVersion = 5
	headerRaisedTS    = 6
	headerReportedTS  = 7
	kpiType           = 1
	kpiTS             = 2
	kpiSliceData      = 3
	infoMetadata      = 1
	infoMetrics       = 2
	metaTitle         = 1
	metaTS            = 2
	metaDeviceID      = 5
	metaContext       = 6

	categoryEquipment = 2
	typeKPIEvent2     = 2
)

// SubCategory values of the header.
const (
	SubCategoryPON  = 0
	SubCategoryOLT  = 1
	SubCategoryONT  = 2
	SubCategoryONU  = 3
	SubCategoryNNI  = 4
	SubCategoryNone = 5
)

// Validate reports what would make the event useless to shovel: no title
// or device, no metrics, a value that is not finite.
func (e *Event) Validate() error {
	var errs []error
	if e.Title == "" || e.DeviceID == "" {
		errs = append(errs, fmt.Errorf("kpi: event needs a title and a device id, got %q and %q", e.Title, e.DeviceID))
	}
	if len(e.Metrics) == 0 {
		errs = append(errs, errors.New("kpi: event has no metrics"))
	}
	if e.Time.IsZero() || e.Time.Unix() <= 0 {
		errs = append(errs, fmt.Errorf("kpi: time %v is not a time after 1970", e.Time))
	}
	for _, m := range e.Metrics {
		if f := float32(m.Value); math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			errs = append(errs, fmt.Errorf("kpi: %s: value %v is not a finite float32", m.Name, m.Value))
		}
	}
	return errors.Join(errs...)
}

// Key is the Kafka record key the adapters give a KPI event: its raise
// time in Unix seconds, as a decimal string.
func (e *Event) Key() []byte { return strconv.AppendInt(nil, e.Time.Unix(), 10) }

// AppendProto validates e and appends its protobuf encoding to dst.
func (e *Event) AppendProto(dst []byte) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return dst, err
	}
	secs := float64(e.Time.Unix())

	var meta []byte
	meta = protowire.AppendTag(meta, metaTitle, protowire.BytesType)
	meta = protowire.AppendString(meta, e.Title)
	meta = protowire.AppendTag(meta, metaTS, protowire.Fixed64Type)
	meta = protowire.AppendFixed64(meta, math.Float64bits(secs))
	meta = protowire.AppendTag(meta, metaDeviceID, protowire.BytesType)
	meta = protowire.AppendString(meta, e.DeviceID)
	for _, c := range e.Context {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, c.Key)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendString(entry, c.Value)
		meta = protowire.AppendTag(meta, metaContext, protowire.BytesType)
		meta = protowire.AppendBytes(meta, entry)
	}

	var info []byte
	info = protowire.AppendTag(info, infoMetadata, protowire.BytesType)
	info = protowire.AppendBytes(info, meta)
	for _, m := range e.Metrics {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, m.Name)
		entry = protowire.AppendTag(entry, 2, protowire.Fixed32Type)
		entry = protowire.AppendFixed32(entry, math.Float32bits(float32(m.Value)))
		info = protowire.AppendTag(info, infoMetrics, protowire.BytesType)
		info = protowire.AppendBytes(info, entry)
	}

	var kpi []byte
	kpi = protowire.AppendTag(kpi, kpiType, protowire.VarintType)
	kpi = protowire.AppendVarint(kpi, 0) // slice
	kpi = protowire.AppendTag(kpi, kpiTS, protowire.Fixed64Type)
	kpi = protowire.AppendFixed64(kpi, math.Float64bits(secs))
	kpi = protowire.AppendTag(kpi, kpiSliceData, protowire.BytesType)
	kpi = protowire.AppendBytes(kpi, info)

	ts := func(t time.Time) []byte {
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t.Unix()))
		if n := t.Nanosecond(); n != 0 {
			b = protowire.AppendTag(b, 2, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(n))
		}
		return b
	}
	var header []byte
	header = protowire.AppendTag(header, headerID, protowire.BytesType)
	header = protowire.AppendString(header, "Voltha.openolt.STATS_PUBLISH_EVENT."+strconv.FormatInt(e.Time.UnixNano(), 10))
	header = protowire.AppendTag(header, headerCategory, protowire.VarintType)
	header = protowire.AppendVarint(header, categoryEquipment)
	if e.SubCategory != 0 {
		header = protowire.AppendTag(header, headerSubCategory, protowire.VarintType)
		header = protowire.AppendVarint(header, uint64(e.SubCategory))
	}
	header = protowire.AppendTag(header, headerType, protowire.VarintType)
	header = protowire.AppendVarint(header, typeKPIEvent2)
	header = protowire.AppendTag(header, headerTypeVersion, protowire.BytesType)
	header = protowire.AppendString(header, "0.1")
	header = protowire.AppendTag(header, headerRaisedTS, protowire.BytesType)
	header = protowire.AppendBytes(header, ts(e.Time.Truncate(time.Second)))
	header = protowire.AppendTag(header, headerReportedTS, protowire.BytesType)
	header = protowire.AppendBytes(header, ts(e.Time))

	dst = protowire.AppendTag(dst, eventHeader, protowire.BytesType)
	dst = protowire.AppendBytes(dst, header)
	dst = protowire.AppendTag(dst, eventKPI2, protowire.BytesType)
	return protowire.AppendBytes(dst, kpi), nil
}

// OLTEvents are this host's KPIs as the openolt adapter would publish an
// OLT's: each network interface as an NNI port (title NNIStats, context
// oltid, devicetype and portlabel "nni-<interface>", the adapter's metric
// names), and this process's measurements (ProcessMetrics) under the title
// ProcessStats. Where the platform has no /proc/net/dev, only the latter.
func OLTEvents(now time.Time, deviceID string) ([]Event, error) {
	ctx := func(extra ...ContextEntry) []ContextEntry {
		return append([]ContextEntry{{"oltid", deviceID}, {"devicetype", "openolt"}}, extra...)
	}
	var events []Event
	ifaces, _ := netInterfaces() // none where the platform cannot tell
	for _, ifc := range ifaces {
		events = append(events, Event{Title: "NNIStats", DeviceID: deviceID, Time: now, SubCategory: SubCategoryNNI,
			Context: ctx(ContextEntry{"portlabel", "nni-" + ifc.name}), Metrics: ifc.metrics})
	}
	s := NewSlice(now)
	if err := (Process{}).Collect(s, "p"); err != nil {
		return nil, err
	}
	proc := Event{Title: "ProcessStats", DeviceID: deviceID, Time: now, SubCategory: SubCategoryOLT, Context: ctx()}
	for _, o := range s.objects {
		proc.Metrics = append(proc.Metrics, o.metrics...)
	}
	return append(events, proc), nil
}

// netInterface is one line of /proc/net/dev, as NNIStats metrics.
type netInterface struct {
	name    string
	metrics []Metric
}

// netDevColumns are the /proc/net/dev columns published, by position after
// the interface name, under the openolt adapter's metric names.
var netDevColumns = []struct {
	col  int
	name string
}{
	{0, "RxBytes"}, {1, "RxPackets"}, {2, "RxErrorPackets"}, {7, "RxMcastPackets"},
	{8, "TxBytes"}, {9, "TxPackets"}, {10, "TxErrorPackets"},
}

// NNIMetrics returns the names of the metrics OLTEvents publishes for
// each network interface, in order.
func NNIMetrics() []string {
	out := make([]string, len(netDevColumns))
	for i, c := range netDevColumns {
		out[i] = c.name
	}
	return out
}

// parseNetDev reads the text of /proc/net/dev; lines it cannot read are
// left out.
func parseNetDev(b []byte) []netInterface {
	var out []netInterface
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, "|") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < 16 {
			continue
		}
		ifc := netInterface{name: name}
		for _, c := range netDevColumns {
			v, err := strconv.ParseUint(fields[c.col], 10, 64)
			if err != nil {
				ifc.metrics = nil
				break
			}
			ifc.metrics = append(ifc.metrics, Metric{Name: c.name, Value: float64(v)})
		}
		if ifc.metrics != nil {
			out = append(out, ifc)
		}
	}
	return out
}
