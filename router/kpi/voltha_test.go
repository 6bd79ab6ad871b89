package kpi_test

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/kpi"
	"github.com/shovel-metrics/shovel/router/metric"
)

// The encoding is a VOLTHA Event as protobuf's own library reads it, with
// the tests' transcription of events.proto: every field known, every
// value where the openolt adapter puts it.
func TestEventIsAVolthaEvent(t *testing.T) {
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(
		&protocompile.SourceResolver{ImportPaths: []string{filepath.Join("..", "..", "decoders", "testdata", "voltha-event")}})}
	files, err := c.Compile(context.Background(), "events.proto")
	require.NoError(t, err)
	e := kpi.Event{Title: "NNIStats", DeviceID: "olt-1", Time: time.Unix(1796230800, 250e6), SubCategory: kpi.SubCategoryNNI,
		Context: []kpi.ContextEntry{{"oltid", "olt-1"}, {"devicetype", "openolt"}, {"portlabel", "nni-eth0"}},
		Metrics: []kpi.Metric{{"RxBytes", 123456}, {"RxErrorRatio", 24.54}}}
	b, err := e.AppendProto(nil)
	require.NoError(t, err)
	msg := dynamicpb.NewMessage(files[0].Messages().ByName("Event"))
	require.NoError(t, proto.Unmarshal(b, msg))
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	require.NoError(t, err)
	require.JSONEq(t, `{"header": {"id": "Voltha.openolt.STATS_PUBLISH_EVENT.1796230800250000000", "category": "EQUIPMENT",
		"sub_category": "NNI", "type": "KPI_EVENT2", "type_version": "0.1", "raised_ts": "2026-12-02T17:00:00Z",
		"reported_ts": "2026-12-02T17:00:00.250Z"},
		"kpi_event2": {"ts": 1796230800, "slice_data": [{"metadata": {"title": "NNIStats", "ts": 1796230800, "device_id": "olt-1",
		"context": {"oltid": "olt-1", "devicetype": "openolt", "portlabel": "nni-eth0"}},
		"metrics": {"RxBytes": 123456, "RxErrorRatio": 24.54}}]}}`, string(js))
	require.Equal(t, "1796230800", string(e.Key()), "keyed by raise time in seconds, as the adapters key KPI events")
}

// What a publisher sends in the voltha-event format, shovel's voltha-event
// decoder reads back: every interface's NNIStats and the process's stats.
func TestOLTEventsRoundTripThroughTheVolthaEventDecoder(t *testing.T) {
	now := time.Unix(1796230800, 0)
	events, err := kpi.OLTEvents(now, "host-1")
	require.NoError(t, err)
	require.NotEmpty(t, events)
	require.Equal(t, "ProcessStats", events[len(events)-1].Title)
	if runtime.GOOS == "linux" { // every host has its loopback at least
		require.Equal(t, "NNIStats", events[0].Title)
		require.Equal(t, []string{"RxBytes", "RxPackets", "RxErrorPackets", "RxMcastPackets", "TxBytes", "TxPackets", "TxErrorPackets"},
			names(events[0].Metrics))
		require.Equal(t, kpi.NNIMetrics(), names(events[0].Metrics))
	}
	f, err := decoders.Lookup("voltha-event")
	require.NoError(t, err)
	dec, err := f(nil, metric.Env{})
	require.NoError(t, err)
	for _, e := range events {
		b, err := e.AppendProto(nil)
		require.NoError(t, err)
		var res metric.Result
		require.NoError(t, dec.Decode(&metric.Message{Value: b}, &res))
		require.Empty(t, res.Rejected)
		require.Len(t, res.Samples, len(e.Metrics))
		for i, s := range res.Samples {
			prefix := "voltha.host-1." + e.Title + "."
			if e.Title == "NNIStats" {
				prefix += strings.ReplaceAll(e.Context[2].Value, ".", "_") + "."
			}
			require.Equal(t, prefix+e.Metrics[i].Name, s.Path)
			require.Equal(t, float64(1796230800), s.Time)
			require.InDelta(t, e.Metrics[i].Value, s.Value, e.Metrics[i].Value*2e-7+1e-9, "float32 on the wire")
		}
	}
}

func names(ms []kpi.Metric) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestEventValidate(t *testing.T) {
	_, err := (&kpi.Event{Title: "NNIStats", DeviceID: "d", Time: time.Unix(1, 0), Metrics: []kpi.Metric{{"x", 1e39}}}).AppendProto(nil)
	require.ErrorContains(t, err, "x: value 1e+39 is not a finite float32")
	_, err = (&kpi.Event{Time: time.Unix(1, 0), Metrics: []kpi.Metric{{"x", 1}}}).AppendProto(nil)
	require.ErrorContains(t, err, "needs a title and a device id")
}

// A publisher in the voltha-event format sends one event per Event, to
// voltha.events by default, keyed by raise time.
func TestPublisherVolthaEventFormat(t *testing.T) {
	s := &recordSender{}
	p := &kpi.Publisher{Sender: s, Format: kpi.FormatVolthaEvent, DeviceID: "olt-9", Now: func() time.Time { return time.Unix(1796230800, 0) },
		Events: func(now time.Time, id string) ([]kpi.Event, error) {
			return []kpi.Event{
				{Title: "NNIStats", DeviceID: id, Time: now, Metrics: []kpi.Metric{{"RxBytes", 1}}},
				{Title: "PONStats", DeviceID: id, Time: now, Metrics: []kpi.Metric{{"TxBytes", 2}}},
			}, nil
		}}
	require.NoError(t, p.Publish(context.Background()))
	require.Len(t, s.sent, 2)
	for _, m := range s.sent {
		require.Equal(t, kpi.VolthaTopic, m.topic)
		require.Equal(t, "1796230800", m.key)
	}
}
