package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/stretchr/testify/require"
)

// shovel decode reads a VOLTHA event as it comes off the topic: a file
// holding one event, a length-delimited stream of them, or hexadecimal.
func TestDecodeVolthaEvents(t *testing.T) {
	md := volthaEventType(t)
	nni := encodeEvent(t, md, `{"kpi_event2": {"ts": 1796230800, "slice_data": [{"metadata": {"title": "NNIStats", "device_id": "olt1",
		"context": {"portlabel": "nni-1048576"}}, "metrics": {"RxBytes": 123456}}]}}`)
	optical := encodeEvent(t, md, `{"kpi_event2": {"slice_data": [{"metadata": {"title": "PON_Optical", "ts": 1796230800515836000,
		"device_id": "onu1"}, "metrics": {"ani_g_instance_id": 32769, "receive_power_dBm": -19.4}}]}}`)
	device := encodeEvent(t, md, `{"device_event": {"device_event_name": "ONU_LOSS_OF_SIGNAL_RAISE_EVENT"}}`)
	var stream []byte
	for _, m := range [][]byte{nni, device, optical} {
		stream = append(binary.AppendUvarint(stream, uint64(len(m))), m...)
	}
	const nniLine = "voltha.olt1.NNIStats.nni-1048576.RxBytes 123456 1796230800\n"
	const opticalLine = "voltha.onu1.PON_Optical.32769.receive_power_dBm -19.4 1796230800.515836\n"
	tests := []struct {
		name           string
		stdin          []byte
		args           []string
		code           int
		stdout, stderr string
	}{
		{"one event, routed by its topic", nni, []string{"--topic", "voltha.events", "--now", "1796230900"}, 0, nniLine,
			"route voltha-events: decoder voltha-event, 1 samples to graphite\n"},
		{"one event, by --decoder", optical, []string{"--decoder", "voltha-event", "--now", "1796230900"}, 0, opticalLine,
			"route --decoder voltha-event: decoder voltha-event, 1 samples\n"},
		{"a device event is skipped, not rejected", device, []string{"--topic", "voltha.events"}, 0, "",
			"skip device_event (route voltha-events, decoder voltha-event)\n"},
		{"a length-delimited stream", stream, []string{"--topic", "voltha.events", "--delimited", "--now", "1796230900"}, 0, nniLine + opticalLine,
			"route voltha-events (message 1): decoder voltha-event, 1 samples to graphite\n" +
				"skip device_event (message 2) (route voltha-events, decoder voltha-event)\n" +
				"route voltha-events (message 3): decoder voltha-event, 1 samples to graphite\n"},
		{"hexadecimal, as xxd -p wraps it", []byte(wrap(hex.EncodeToString(nni), 60)), []string{"--topic", "voltha.events", "--hex", "--now", "1796230900"}, 0, nniLine,
			"route voltha-events: decoder voltha-event, 1 samples to graphite\n"},
		{"a truncated stream", stream[:len(stream)-3], []string{"--topic", "voltha.events", "--delimited"}, exitUsage, "",
			"shovel: decode: --delimited: offset "},
		{"bad hexadecimal", []byte("0a0g"), []string{"--hex"}, exitUsage, "", "shovel: decode: --hex: -: encoding/hex: invalid byte: U+0067 'g'\n"},
		{"an event that is not protobuf", []byte("\x0a\x05ab"), []string{"--topic", "voltha.events"}, exitRuntime, "",
			"reject invalid_protobuf: event: unexpected EOF\nshovel: decode: 1 of 1 messages and 0 samples rejected\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := decodeRun(t, string(tc.stdin), tc.args...)
			require.Equal(t, tc.code, code, stderr)
			require.Equal(t, tc.stdout, stdout)
			require.True(t, strings.HasPrefix(stderr, tc.stderr), "stderr %q", stderr)
		})
	}
}

func wrap(s string, width int) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width] + "\n")
		s = s[width:]
	}
	return b.String() + s + "\n"
}

// The worked example of the protobuf decoder, configs/protobuf-decoder.yaml
// with configs/device-metrics.proto, passes `shovel config check` and
// decodes what its comment says.
func TestProtobufDecoderExample(t *testing.T) {
	t.Chdir(filepath.Join("..", "..")) // the example's paths are from the repository's root
	code, stdout, stderr := runCaptured(t, "config", "check", "--config", "configs/protobuf-decoder.yaml")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "ok\n", stdout)

	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{"configs"}})}
	files, err := c.Compile(context.Background(), "device-metrics.proto")
	require.NoError(t, err)
	msg := encodeEvent(t, files[0].Messages().ByName("DeviceMetrics"), `{"device": {"id": "sw-17", "model": "x7"}, "site": "lab1",
		"collected_at": "2023-11-14T22:13:20.250Z",
		"readings": [{"name": "temperature_c", "value": 41.5}, {"name": "fan_rpm", "value": 5200}],
		"counters": {"rx_bytes": "123456", "tx_bytes": "654321"}, "labels": {"rack": "r4"}, "uptime_seconds": 86400}`)
	path := filepath.Join(t.TempDir(), "device.bin")
	require.NoError(t, os.WriteFile(path, msg, 0o644))
	code, stdout, stderr = decodeRun(t, "", "--config", "configs/protobuf-decoder.yaml", "--topic", "device.metrics", "--now", "1700000100", path)
	require.Equal(t, 0, code, stderr)
	// The samples the example's comment promises, in its order.
	require.Equal(t, `devices.lab1.sw-17.r4.uptime_seconds 86400 1700000000.25
devices.lab1.sw-17.r4.temperature_c 41.5 1700000000.25
devices.lab1.sw-17.r4.fan_rpm 5200 1700000000.25
devices.lab1.sw-17.r4.rx_bytes 123456 1700000000.25
devices.lab1.sw-17.r4.tx_bytes 654321 1700000000.25
`, stdout)
	example, err := os.ReadFile("configs/protobuf-decoder.yaml")
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		f := strings.Fields(line)
		require.Contains(t, string(example), "#   "+f[0]+" "+f[1]+"\n", "the example's comment shows %s", line)
	}
}
