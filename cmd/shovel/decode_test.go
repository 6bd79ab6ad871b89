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
`
	code, stdout, stderr := decodeRun(t, msgs, "--config", "../../configs/json-decoder.yaml")
	require.Equal(t, exitRuntime, code, stderr)
	require.Equal(t, `voltha.onu.onu-17.uni-1.optics.rx_power_dbm -21.5 1700000000.123
voltha.onu.onu-17.uni-1.rx_bytes 1234 1700000000.123
voltha.onu.onu-17.uni-1.link_up 1 1700000000.123
voltha.simulated_olt.eecd8f5327bc.cpu_util 24.54 1484291389.5
`, stdout)
	require.Equal(t, `reject missing_field "voltha.onu.a_b_evil_1_2.p.optics.rx_power_dbm" (message 3)
reject not_finite "voltha.onu.a_b_evil_1_2.p.x" (message 3)
reject no_route (message 4)
shovel: decode: 1 of 4 messages and 2 samples rejected
`, stderr)
}

func TestDecodeFormats(t *testing.T) {
	tests := []struct {
		name           string
		args           []string
		stdin          string
		code           int
		stdout, stderr string
	}{
		{
			name:   "one JSON document over several lines, routed by the default config",
			stdin:  "{\"type\":\"slice\",\n \"ts\":1480000000,\n \"data\":{\"voltha.internal.abc\":{\"deferreds\":12}}}\n",
			stdout: "voltha.internal.abc.deferreds 12 1480000000\n",
		},
		{
			name:   "slice_data by type",
			args:   []string{"--type", "slice"},
			stdin:  `{"ts":1534440704.0,"slice_data":[{"metadata":{"title":"Ethernet","device_id":"000115929ed71696","context":{"port_no":"1"}},"metrics":{"tx_packets":16.0}}]}`,
			stdout: "voltha.000115929ed71696.Ethernet.1.tx_packets 16 1534440704\n",
		},
		{
			name:   "plaintext is one message",
			args:   []string{"--decoder", "carbon-plaintext", "-"},
			stdin:  "a.b 1 1480000000\nbad line here now\nc 2.5 1480000001\n",
			code:   exitRuntime,
			stdout: "a.b 1 1480000000\nc 2.5 1480000001\n",
			stderr: "reject bad_line \"bad\"\nshovel: decode: 0 of 1 messages and 1 samples rejected\n",
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
			args:   []string{"--decoder", "slice"},
			stdin:  `{"ts":1,"data":` + strings.Repeat("[", 100) + "\n" + `{"ts":2,"data":{"a":{"b":1}}}` + "\n",
			code:   exitRuntime,
			stdout: "a.b 1 2\n",
			stderr: "reject too_deep (message 1): more than 32 levels\nshovel: decode: 1 of 2 messages and 0 samples rejected\n",
		},
		{
			name:   "unknown decoder",
			args:   []string{"--decoder", "nope"},
			code:   exitUsage,
			stderr: "shovel: decode: decoders.nope: unknown decoder \"nope\" (known: carbon-pickle, carbon-plaintext, json, slice, voltha-event)\n",
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
	var out bytes.Buffer
	require.Equal(t, exitOK, run(context.Background(), []string{"decode", file}, &out, &out))
	require.Equal(t, "o.m 1 5\n", out.String())

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
