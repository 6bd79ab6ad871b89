package decoders_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

// openoltPON is a slice_data entry as the openolt adapter sends it (here
// in the JSON of the voltha.kpis topic): serial_no and logical_device_id
// empty, context holding the port label.
const openoltPON = `{"type":"slice","ts":1700000000,"slice_data":[
 {"metadata":{"title":"PONStats","ts":1700000000,"logical_device_id":"","serial_no":"","device_id":"0001c5f1",
   "context":{"oltid":"10.90.0.114","devicetype":"openolt","portlabel":"pon-0"}},
  "metrics":{"RxBytes":1024,"TxBytes":2048}},
 {"metadata":{"title":"ONUStats","ts":1700000001,"device_id":"0001c5f1",
   "context":{"devicetype":"openolt","onu-serial-number":"BBSM00000001","portno":"7"}},
  "metrics":{"BipErrors":3}}]}`

// VolthaTags is docs/tags.md's tagged layout of VOLTHA KPIs.
func volthaTags(c *decoders.SliceConfig) {
	c.SliceDataPath = decoders.DefaultSliceDataTaggedPath
	c.Tags = decoders.DefaultVolthaTags()
}

func TestSliceTags(t *testing.T) {
	for _, tt := range []struct {
		name    string
		set     func(*decoders.SliceConfig)
		msg     string
		want    []metric.Sample
		repairs []metric.Rejection
	}{
		{"voltha default", volthaTags, openoltPON, []metric.Sample{
			{Path: "voltha.PONStats.RxBytes;device_id=0001c5f1;devicetype=openolt;olt=10.90.0.114;port=pon-0", Time: 1700000000, Value: 1024},
			{Path: "voltha.PONStats.TxBytes;device_id=0001c5f1;devicetype=openolt;olt=10.90.0.114;port=pon-0", Time: 1700000000, Value: 2048},
			{Path: "voltha.ONUStats.BipErrors;device_id=0001c5f1;devicetype=openolt;onu_serial=BBSM00000001;port=7", Time: 1700000001, Value: 3},
		}, nil},
		{"constant and repaired value", func(c *decoders.SliceConfig) {
			c.SliceDataPath = "kpi.{metric}"
			c.Tags = map[string]string{"src": "voltha", "olt": "{context.oltid}", "t": "{title}"}
		}, `{"ts":1,"slice_data":[{"metadata":{"title":"~a b;c","context":{"oltid":10.5}},"metrics":{"m":1}}]}`,
			[]metric.Sample{{Path: "kpi.m;olt=10.5;src=voltha;t=a_b_c", Time: 1, Value: 1}},
			[]metric.Rejection{{Path: "kpi;olt=10.5;src=voltha;t=a_b_c", Reason: metric.ReasonTagRepaired}}},
		{"no tags configured", nil, openoltPON, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dec := newSliceDecoder(t, tt.set)
			var out metric.Result
			require.NoError(t, dec.Decode(&metric.Message{Value: []byte(tt.msg)}, &out))
			checkInvariants(t, out, nil)
			if tt.want == nil {
				for _, s := range out.Samples {
					require.False(t, metric.IsTagged(s.Path), s.Path)
				}
				return
			}
			require.Equal(t, tt.want, out.Samples)
			require.Equal(t, tt.repairs, []metric.Rejection(out.Repaired))
		})
	}
}

func TestJSONTags(t *testing.T) {
	dec := newDecoder(t, "json", func(c *decoders.JSONConfig) {
		onuStats(c)
		c.Path = "{metric}"
		c.Tags = map[string]string{"device": "{device.id}", "port": "{port}", "site": "{site|device.site}", "empty": "{nothing}"}
	})
	var out metric.Result
	require.NoError(t, dec.Decode(&metric.Message{Value: []byte(
		`{"collected_at":1700000000000,"device":{"id":"onu-1","site":"lab"},"port":3,"counters":{"rx":1},"optics":{"rx_power_dbm":-20.5}}`)}, &out))
	checkInvariants(t, out, nil)
	require.Equal(t, []metric.Sample{
		{Path: "voltha.onu.optics.rx_power_dbm;device=onu-1;port=3;site=lab", Time: 1700000000, Value: -20.5},
		{Path: "voltha.onu.rx;device=onu-1;port=3;site=lab", Time: 1700000000, Value: 1},
	}, out.Samples)
}

func TestTagsConfig(t *testing.T) {
	for _, tt := range []struct {
		tags map[string]string
		err  string
	}{
		{map[string]string{"name": "{title}"}, `slice: tags: "name" is not a tag key carbon accepts`},
		{map[string]string{"a b": "x"}, `slice: tags: "a b" is not a tag key`},
		{map[string]string{"k": ""}, "slice: tags.k: empty"},
		{map[string]string{"k": "{a}{b}"}, "slice: tags.k: \"{a}{b}\": want a constant or one placeholder"},
		{map[string]string{"k": "{a..b}"}, `slice: tags.k: "{a..b}": "a..b" is not a dotted field path`},
	} {
		factory, err := decoders.Lookup("slice")
		require.NoError(t, err)
		_, err = factory(func(into any) error {
			into.(*decoders.SliceConfig).Tags = tt.tags
			return nil
		}, metric.Env{Name: "test"})
		require.ErrorContains(t, err, tt.err)
	}
}

// FuzzSliceTagged: the tagged layout holds every decoder's promises for
// any input (checkInvariants: each path valid and, tagged, normalized),
// the output budget among them (checkBudget).
func FuzzSliceTagged(f *testing.F) {
	f.Add([]byte(openoltPON))
	f.Add([]byte(`{"ts":1,"slice_data":[{"metadata":{"title":"t","device_id":"~;=!","context":{"portlabel":"a b\n"}},"metrics":{"m":1}}]}`))
	dec := newSliceDecoder(f, volthaTags)
	f.Fuzz(func(t *testing.T, value []byte) {
		var out metric.Result
		msg := &metric.Message{Value: value, Timestamp: goldenReceiveTime}
		err := dec.Decode(msg, &out)
		checkInvariants(t, out, err)
		checkBudget(t, dec, msg)
	})
}

// TestVolthaEventTags: the voltha-event decoder tags its samples from the
// entry's metadata, context and identifiers; an empty field leaves its
// tag out; a per-interval identifier cannot be a tag.
func TestVolthaEventTags(t *testing.T) {
	meta := pbString(pbString(nil, 1, "Ethernet_Bridge_Port_History"), 5, "onu-dev-1")
	meta = pbString(pbString(meta, 4, ""), 3, "") // serial_no and logical_device_id empty
	meta = pbBytes(meta, 6, pbString(pbString(nil, 1, "onuID"), 2, "3"))
	entity := pbFloatEntry("entity_id", 257)
	dec := newVolthaDecoder(t, func(c *decoders.VolthaEventConfig) {
		c.Paths = map[string]string{"ethernet_bridge_port_history": "voltha.{title}.{metric}"}
		c.Tags = map[string]string{"device_id": "{device_id}", "serial_no": "{serial_no}", "onu_id": "{context.onuID}",
			"entity": "{metrics.entity_id}", "direction": "{direction}", "src": "openonu"}
	})
	var out metric.Result
	err := dec.Decode(&metric.Message{Value: pbKPI2(1796230800, meta, entity, pbFloatEntry("upstream", 1), pbFloatEntry("Octets", 5))}, &out)
	require.NoError(t, err)
	checkInvariants(t, out, err)
	require.Equal(t, []metric.Sample{{
		Path: "voltha.Ethernet_Bridge_Port_History.Octets;device_id=onu-dev-1;direction=upstream;entity=257;onu_id=3;src=openonu",
		Time: 1796230800, Value: 5,
	}}, out.Samples)

	factory, err := decoders.Lookup("voltha-event")
	require.NoError(t, err)
	_, err = factory(func(into any) error {
		into.(*decoders.VolthaEventConfig).Tags = map[string]string{"end": "{metrics.interval_end_time}"}
		return nil
	}, metric.Env{Name: "test"})
	require.ErrorContains(t, err, "interval_end_time changes every interval")
}

// TestVolthaEventPathOverride: a title's path set in YAML (whose keys the
// loader folds to lower case) replaces the default of that title every
// time, rather than racing it in map order.
func TestVolthaEventPathOverride(t *testing.T) {
	meta := pbBytes(pbString(pbString(nil, 1, "NNIStats"), 5, "olt1"), 6, pbString(pbString(nil, 1, "portlabel"), 2, "nni-1"))
	for range 20 {
		dec := newVolthaDecoder(t, func(c *decoders.VolthaEventConfig) { c.Paths["nnistats"] = "flat.{title}.{metric}" })
		var out metric.Result
		require.NoError(t, dec.Decode(&metric.Message{Value: pbKPI2(1796230800, meta, pbFloatEntry("RxBytes", 1))}, &out))
		require.Equal(t, "flat.NNIStats.RxBytes", out.Samples[0].Path)
	}
}
