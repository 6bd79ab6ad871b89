package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// decodeRun runs `shovel decode args...` with stdin and returns its exit
// code, stdout and stderr.
func decodeRun(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&stdout, &stderr)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"decode"}, args...))
	code := exitOK
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = exitRuntime
		var ue usageError
		if errors.As(err, &ue) {
			code = exitUsage
		}
		stderr.WriteString("shovel: " + err.Error() + "\n")
	}
	return code, stdout.String(), stderr.String()
}

func TestDecodeJSONExampleConfig(t *testing.T) {
	msgs := `{"type":"onu_stats","device":{"id":"onu-17"},"port":"uni-1","collected_at":1700000000123,"counters":{"rx_bytes":1234,"link_up":true},"optics":{"rx_power_dbm":-21.5}}
{"type":"slice","ts":1484291389.5,"prefixes":{"voltha.simulated_olt.eecd8f5327bc":{"metrics":{"cpu_util":24.54}}}}
{"type":"onu_stats","device":{"id":"a b\nevil 1 2"},"port":"p","collected_at":1,"counters":{"x":"NaN"}}
{"type":"other"}
{"type":
`
	// As of 2023-11-14, the 2017 slice is more than the default max_age
	// (a year) old: the router drops it, and so does decode.
	code, stdout, stderr := decodeRun(t, msgs, "--config", "../../configs/json-decoder.yaml", "--now", "2023-11-14T22:13:20Z")
	require.Equal(t, exitRuntime, code, stderr)
	require.Equal(t, `voltha.onu.onu-17.uni-1.optics.rx_power_dbm -21.5 1700000000.123
voltha.onu.onu-17.uni-1.rx_bytes 1234 1700000000.123
voltha.onu.onu-17.uni-1.link_up 1 1700000000.123
`, stdout)
	require.Equal(t, `route onu (message 1): decoder onu-stats, 3 samples to graphite
route slices (message 2): decoder slice, 0 samples to graphite
reject ts_out_of_window "voltha.simulated_olt.eecd8f5327bc.cpu_util" (message 2)
route onu (message 3): decoder onu-stats, 0 samples to graphite
reject missing_field "voltha.onu.a_b_evil_1_2.p.optics.rx_power_dbm" (message 3)
reject not_finite "voltha.onu.a_b_evil_1_2.p.x" (message 3)
reject no_route (message 4): no route matches
reject invalid_json (message 5): not valid JSON: no route can read its type
shovel: decode: 2 of 5 messages and 3 samples rejected
`, stderr)
}

func TestDecodeFormats(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rules, []byte(`
kafka: {brokers: "localhost:9092", topics: [voltha.kpis]}
routes:
  - name: pon
    match: {type: slice, headers: {source: pon}}
    decoder: slice
    rules:
      - drop: "voltha.*.debug.*"
      - rewrite: {match: "^voltha\\.", replace: "pon."}
      - add_prefix: prod
    outputs: [graphite, archive]
  - name: rest
    match: {type: slice}
    decoder: slice
    outputs: [graphite]
outputs:
  graphite: {kind: carbon-pickle, address: "localhost:2004"}
  archive: {kind: file, path: "-"}
dead_letter: {topic: shovel.dead}
`), 0o600))
	slice := `{"type":"slice","ts":1480000000,"data":{"voltha.olt.debug":{"x":1},"voltha.olt":{"cpu":5}}}`
	tests := []struct {
		name           string
		args           []string
		stdin          string
		code           int
		stdout, stderr string
	}{
		{
			name:   "one JSON document over several lines, routed by the default config",
			args:   []string{"--now", "1480000100"},
			stdin:  "{\"type\":\"slice\",\n \"ts\":1480000000,\n \"data\":{\"voltha.internal.abc\":{\"deferreds\":12}}}\n",
			stdout: "voltha.internal.abc.deferreds 12 1480000000\n",
			stderr: "route slices: decoder slice, 1 samples to graphite\n",
		},
		{
			name:   "two pretty-printed documents are two messages",
			args:   []string{"--now", "1480000100"},
			stdin:  "{\n  \"type\": \"slice\",\n  \"ts\": 1480000000,\n  \"data\": {\"a\": {\"b\": 1}}\n}\n{\n  \"type\": \"slice\",\n  \"ts\": 1480000001,\n  \"data\": {\"a\": {\"b\": 2}}\n}\n",
			stdout: "a.b 1 1480000000\na.b 2 1480000001\n",
			stderr: "route slices (message 1): decoder slice, 1 samples to graphite\nroute slices (message 2): decoder slice, 1 samples to graphite\n",
		},
		{
			name:   "the time window, as the router holds it",
			stdin:  `{"type":"slice","ts":1480000000,"data":{"a":{"b":1}}}`,
			code:   exitRuntime,
			stderr: "route slices: decoder slice, 0 samples to graphite\nreject ts_out_of_window \"a.b\"\nshovel: decode: 0 of 1 messages and 1 samples rejected\n",
		},
		{
			name:   "the route's rules, its outputs, and routing by header",
			args:   []string{"--config", rules, "--header", "source=pon", "--now", "1480000100"},
			stdin:  slice,
			stdout: "prod.pon.olt.cpu 5 1480000000\n",
			stderr: "route pon: decoder slice, 1 samples to graphite, archive (1 left out by its rules)\n",
		},
		{
			name:   "without the header, the next route",
			args:   []string{"--config", rules, "--now", "1480000100"},
			stdin:  slice,
			stdout: "voltha.olt.debug.x 1 1480000000\nvoltha.olt.cpu 5 1480000000\n",
			stderr: "route rest: decoder slice, 2 samples to graphite\n",
		},
		{
			name:   "a rejected message goes to the dead-letter topic",
			args:   []string{"--config", rules},
			stdin:  `{"type":"slice","ts":1480000000,"data":[1]}`,
			code:   exitRuntime,
			stderr: "reject bad_shape: data is array, want object; to the dead-letter topic shovel.dead\nshovel: decode: 1 of 1 messages and 0 samples rejected\n",
		},
		{
			name:   "slice_data by type",
			args:   []string{"--type", "slice", "--now", "1534440800"},
			stdin:  `{"ts":1534440704.0,"slice_data":[{"metadata":{"title":"Ethernet","device_id":"000115929ed71696","context":{"port_no":"1"}},"metrics":{"tx_packets":16.0}}]}`,
			stdout: "voltha.000115929ed71696.Ethernet.1.tx_packets 16 1534440704\n",
			stderr: "route slices: decoder slice, 1 samples to graphite\n",
		},
		{
			name:   "plaintext is one message",
			args:   []string{"--decoder", "carbon-plaintext", "--now", "1480000100", "-"},
			stdin:  "a.b 1 1480000000\nbad line here now\nc 2.5 1480000001\n",
			code:   exitRuntime,
			stdout: "a.b 1 1480000000\nc 2.5 1480000001\n",
			stderr: "route --decoder carbon-plaintext: decoder carbon-plaintext, 2 samples\nreject bad_line \"bad\"\nshovel: decode: 0 of 1 messages and 1 samples rejected\n",
		},
		{
			name:   "pickle that calls a global",
			args:   []string{"--decoder", "carbon-pickle"},
			stdin:  "cos\nsystem\n(S'id'\ntR.",
			code:   exitRuntime,
			stderr: "reject unsafe_pickle: GLOBAL opcode at offset 0\nshovel: decode: 1 of 1 messages and 0 samples rejected\n",
		},
		{
			name:   "whole-message rejection with its reason",
			args:   []string{"--decoder", "slice", "--now", "2"},
			stdin:  `{"ts":1,"data":` + strings.Repeat("[", 100) + "\n" + `{"ts":2,"data":{"a":{"b":1}}}` + "\n",
			code:   exitRuntime,
			stdout: "a.b 1 2\n",
			stderr: "reject too_deep (message 1): more than 32 levels\nroute --decoder slice (message 2): decoder slice, 1 samples\nshovel: decode: 1 of 2 messages and 0 samples rejected\n",
		},
		{
			name:   "unknown decoder",
			args:   []string{"--decoder", "nope"},
			code:   exitUsage,
			stderr: "shovel: decode: decoders.nope: unknown decoder \"nope\" (known: carbon-pickle, carbon-plaintext, json, protobuf, slice, voltha-event)\n",
		},
		{
			name:   "type no route takes",
			args:   []string{"--type", "nope"},
			code:   exitUsage,
			stderr: "shovel: decode: no route matches type \"nope\"\n",
		},
		{
			name:   "both --type and --decoder",
			args:   []string{"--type", "slice", "--decoder", "slice"},
			code:   exitUsage,
			stderr: "shovel: decode: --type and --decoder exclude each other\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := decodeRun(t, tt.stdin, tt.args...)
			require.Equal(t, tt.code, code, stderr)
			require.Equal(t, tt.stdout, stdout)
			require.Equal(t, tt.stderr, stderr)
		})
	}
}

func TestDecodeFileArgument(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kpis.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"type":"slice","ts":5,"data":{"o":{"m":1}}}`), 0o600))
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, run(context.Background(), []string{"decode", "--now", "10", file}, &out, &errOut))
	require.Equal(t, "o.m 1 5\n", out.String())
	require.Equal(t, "route slices: decoder slice, 1 samples to graphite\n", errOut.String())

	out.Reset()
	require.Equal(t, exitUsage, run(context.Background(), []string{"decode", file + ".missing"}, &out, &out))
	require.Contains(t, out.String(), "no such file or directory")
}

// TestDecodeOutputBudget: `shovel decode` holds a message to the router's
// output budget. A 1 MB pickle that references one 3.8 KB-path tuple
// 520 000 times through its memo would print 2 GB; it is rejected as
// output_budget having allocated a few times its budget, not gigabytes.
func TestDecodeOutputBudget(t *testing.T) {
	path := strings.TrimSuffix(strings.Repeat(strings.Repeat("p", 199)+".", 19), ".")
	bomb := []byte{0x80, 2, ']', 'q', 0, '(', 'X'}
	bomb = binary.LittleEndian.AppendUint32(bomb, uint32(len(path)))
	bomb = append(bomb, path...)
	bomb = append(bomb, 'J', 0, 0xf1, 0x53, 0x65, 'K', 1, 0x86, 0x86, 'q', 1) // (path, (1700000000, 1))
	for len(bomb) < 1<<20-4 {
		bomb = append(bomb, 'h', 1)
	}
	bomb = append(bomb, 'e', '.')
	file := filepath.Join(t.TempDir(), "bomb.pickle")
	require.NoError(t, os.WriteFile(file, bomb, 0o600))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	code, stdout, stderr := decodeRun(t, "", "--decoder", "carbon-pickle", file)
	runtime.ReadMemStats(&after)
	require.Equal(t, exitRuntime, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "reject output_budget: ")
	budget := uint64(16 * len(bomb))
	require.Less(t, after.TotalAlloc-before.TotalAlloc, 3*budget, "allocated for a %d-byte message", len(bomb))
}
