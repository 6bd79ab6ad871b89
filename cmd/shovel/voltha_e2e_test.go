package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

// volthaEventType compiles the tests' transcription of VOLTHA's
// events.proto: the events below are encoded by protobuf's own library,
// which shares no code with the voltha-event decoder.
func volthaEventType(t testing.TB) protoreflect.MessageDescriptor {
	t.Helper()
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(
		&protocompile.SourceResolver{ImportPaths: []string{filepath.Join("..", "..", "decoders", "testdata", "voltha-event")}})}
	files, err := c.Compile(context.Background(), "events.proto")
	require.NoError(t, err)
	return files[0].Messages().ByName("Event")
}

func encodeEvent(t testing.TB, md protoreflect.MessageDescriptor, text string) []byte {
	t.Helper()
	msg := dynamicpb.NewMessage(md)
	require.NoError(t, protojson.Unmarshal([]byte(text), msg), text)
	b, err := proto.Marshal(msg) // map order as Go's encoder has it: random
	require.NoError(t, err)
	return b
}

// float32Written is what a float32 value should become in Carbon: its
// shortest decimal, the value its publisher meant.
func float32Written(v float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(float32(v)), 'g', -1, 32), 64)
	return f
}

// volthaKPIs builds n rounds of what a current VOLTHA puts on
// voltha.events: per round an OLT's NNI port stats, an ONU's stats as the
// openolt adapter reports them, an ONU's optical power as the openonu
// adapter reports it (its timestamps in nanoseconds), and a device event
// and an RPC event that are not KPIs. The expected samples are written
// out here from docs/voltha-events.md's layout. It returns the KPI
// messages and the others apart.
func volthaKPIs(t testing.TB, n int, ts0 int64) (kpis []kpi, others [][]byte) {
	md := volthaEventType(t)
	for i := range n {
		ts := ts0 + int64(i)
		olt := fmt.Sprintf("olt-%d", i%2)
		rx, tx, ratio := float64(i*1000), float64(i*3+1), 0.1*float64(i%7)
		nni := fmt.Sprintf(`{"header": {"id": "Voltha.openolt.STATS.%d", "category": "EQUIPMENT", "sub_category": "NNI", "type": "KPI_EVENT2",
			"type_version": "0.1", "raised_ts": %q},
			"kpi_event2": {"type": "slice", "ts": %d, "slice_data": [{"metadata": {"title": "NNIStats", "ts": %d, "device_id": %q,
			"context": {"oltid": %q, "devicetype": "openolt", "portlabel": "nni-1048576"}},
			"metrics": {"RxBytes": %g, "TxBytes": %g, "RxErrorRatio": %g}}]}}`,
			ts*1e9, time.Unix(ts, 0).UTC().Format(time.RFC3339), ts, ts, olt, olt, rx, tx, ratio)
		p := "voltha." + olt + ".NNIStats.nni-1048576."
		kpis = append(kpis, kpi{value: encodeEvent(t, md, nni), want: []carbontest.Sample{
			{Path: p + "RxBytes", Time: float64(ts), Value: rx},
			{Path: p + "TxBytes", Time: float64(ts), Value: tx},
			{Path: p + "RxErrorRatio", Time: float64(ts), Value: float32Written(ratio)},
		}})

		pon, onu := i%4, i%16+1
		onuStats := fmt.Sprintf(`{"header": {"raised_ts": %q},
			"kpi_event2": {"ts": %d, "slice_data": [{"metadata": {"title": "ONUStats", "ts": %d, "device_id": %q,
			"context": {"oltid": %q, "devicetype": "openolt", "portlabel": "ONU"}},
			"metrics": {"intfId": %d, "onuId": %d, "Timestamp": %d, "BipErrors": %d, "RxBytes": %d}}]}}`,
			time.Unix(ts, 0).UTC().Format(time.RFC3339), ts, ts, olt, olt, pon, onu, ts, i%5, i*10)
		p = fmt.Sprintf("voltha.%s.ONUStats.pon-%d.onu-%d.", olt, pon, onu)
		kpis = append(kpis, kpi{value: encodeEvent(t, md, onuStats), want: []carbontest.Sample{
			{Path: p + "BipErrors", Time: float64(ts), Value: float64(i % 5)},
			{Path: p + "RxBytes", Time: float64(ts), Value: float64(i * 10)},
		}})

		txPower, rxPower := 2.31+float64(i%3)/10, -19.4-float64(i%5)/10
		optical := fmt.Sprintf(`{"kpi_event2": {"ts": %d500000000, "slice_data": [{"metadata": {"title": "PON_Optical",
			"ts": %d250000000, "logical_device_id": "ld-1", "serial_no": "ALPHe3d1cf70", "device_id": "onu-%d",
			"context": {"devicetype": "brcm_openomci_onu", "intfID": "0", "onuID": "1"}},
			"metrics": {"ani_g_instance_id": 32769, "transmit_power_dBm": %g, "receive_power_dBm": %g}}]}}`,
			ts, ts, i%3, txPower, rxPower)
		p = fmt.Sprintf("voltha.onu-%d.PON_Optical.32769.", i%3)
		kpis = append(kpis, kpi{value: encodeEvent(t, md, optical), want: []carbontest.Sample{
			{Path: p + "transmit_power_dBm", Time: float64(ts) + 0.25, Value: float32Written(txPower)},
			{Path: p + "receive_power_dBm", Time: float64(ts) + 0.25, Value: float32Written(rxPower)},
		}})

		others = append(others,
			encodeEvent(t, md, fmt.Sprintf(`{"header": {"type": "DEVICE_EVENT", "raised_ts": %q},
				"device_event": {"resource_id": %q, "device_event_name": "ONU_LOSS_OF_SIGNAL_RAISE_EVENT", "context": {"onu-id": "%d"}}}`,
				time.Unix(ts, 0).UTC().Format(time.RFC3339), olt, onu)),
			encodeEvent(t, md, fmt.Sprintf(`{"header": {"type": "RPC_EVENT"}, "rpc_event": {"rpc": "EnableDevice", "resource_id": %q}}`, olt)))
	}
	return kpis, others
}

// A current VOLTHA's voltha.events, KPI events mixed with device and RPC
// events, and the original voltha.kpis beside it, go through the built-in
// default config (no --config, no -t): every KPI sample arrives exact in
// Carbon, and the events that are not KPIs are counted as skipped, not
// logged and not rejected.
func TestRouteVolthaEventsWithTheDefaultConfig(t *testing.T) {
	skipShort(t)
	b := kafkatest.Start(t, 2, "voltha.events", "voltha.kpis")
	ts0 := time.Now().Add(-20 * time.Minute).Unix()
	kpis, others := volthaKPIs(t, 60, ts0)
	var recs []kafkatest.Record
	var want []carbontest.Sample
	for i, k := range kpis {
		recs = append(recs, kafkatest.Record{Topic: "voltha.events", Partition: int32(i % 2), Value: k.value})
		want = append(want, k.want...)
		if i%3 == 2 { // the device and RPC events of the round, between its KPIs and the next
			for _, o := range others[2*(i/3) : 2*(i/3)+2] {
				recs = append(recs, kafkatest.Record{Topic: "voltha.events", Partition: int32(i % 2), Value: o})
			}
		}
	}
	b.Produce(t, recs...)
	want = append(want, produceKPIs(t, b, "voltha.kpis", 2, sliceKPIs("voltha.internal", 20, ts0))...)

	pickle := carbontest.ListenPickle(t)
	sh := startShovel(t, "route", "-K", b.Addr, "-g", "it-voltha", "-H", "127.0.0.1", "-p", port(t, pickle.Addr()),
		"--line-port", deadPort(t))
	url := statusURL(t, sh)
	require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond,
		"got %d of %d samples", pickle.Len(), len(want))
	require.Eventually(t, func() bool {
		_, body := get(t, url+"/metrics")
		return metricValue(t, body, "shovel_messages_total") == float64(len(recs)+20)
	}, 30*time.Second, 20*time.Millisecond)
	_, body := get(t, url+"/metrics")
	require.Equal(t, 0, sh.stop(t))
	require.Empty(t, pickle.Errors())
	require.Equal(t, sortSamples(want), sortSamples(pickle.Samples()), "every sample exact, none missing, none extra")

	require.EqualValues(t, 60, metricValue(t, body, `shovel_skipped_total{decoder="voltha-event",reason="device_event"}`))
	require.EqualValues(t, 60, metricValue(t, body, `shovel_skipped_total{decoder="voltha-event",reason="rpc_event"}`))
	require.EqualValues(t, 7*60, metricValue(t, body, `shovel_samples_decoded_total{decoder="voltha-event"}`))
	require.NotContains(t, body, "shovel_rejected_messages_total{", "nothing was rejected")
	require.NotContains(t, body, "shovel_rejected_samples_total{", "nothing was rejected")
	require.NotContains(t, sh.logs.String(), "reason=", "a skipped event is not worth a log line, and nothing was rejected")
	require.Contains(t, sh.logs.String(), "skipped=120 rejected=[]", "the shutdown line counts the skips")
	for _, s := range pickle.Samples() {
		require.False(t, math.IsNaN(s.Value))
	}
}

// The same events into the real carbon-cache, read back with whisper-fetch.
func TestRouteVolthaEventsIntoRealCarbonCache(t *testing.T) {
	skipShort(t)
	carbon := carbontest.Start(t) // skips where graphite-carbon is not installed, except in CI
	b := kafkatest.Start(t, 2, "voltha.events", "voltha.kpis")
	ts0 := time.Now().Add(-10 * time.Minute).Unix()
	kpis, others := volthaKPIs(t, 10, ts0)
	want := produceKPIs(t, b, "voltha.events", 2, kpis)
	for _, o := range others {
		b.Produce(t, kafkatest.Record{Topic: "voltha.events", Value: o})
	}
	sh := startShovel(t, "route", "-K", b.Addr, "-g", "it-voltha-carbon",
		"-H", "127.0.0.1", "-p", port(t, carbon.PickleAddr()), "--line-port", port(t, carbon.LineAddr()))
	byPath := map[string][]carbontest.Sample{}
	for _, s := range want {
		byPath[s.Path] = append(byPath[s.Path], s)
	}
	for path, samples := range byPath {
		points := carbon.WaitFor(t, path, len(samples), 60*time.Second)
		got := map[int64]float64{}
		for _, p := range points {
			got[p.Time] = p.Value
		}
		for _, s := range samples {
			v, ok := got[int64(s.Time)]
			require.True(t, ok, "%s has no point at %d", path, int64(s.Time))
			require.Equal(t, s.Value, v, "%s at %d", path, int64(s.Time))
		}
	}
	require.Equal(t, 0, sh.stop(t))
}
