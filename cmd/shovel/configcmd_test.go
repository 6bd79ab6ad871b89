package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/configs"
)

// runCaptured runs shovel with args and returns its exit code, stdout and stderr.
func runCaptured(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestConfigSamplePrintsTheBuiltInDefault(t *testing.T) {
	code, out, errOut := runCaptured(t, "config", "sample")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, string(configs.Default), out)
	require.Contains(t, out, "# shovel configuration.", "the comments are kept")

	// What sample prints, check accepts.
	path := filepath.Join(t.TempDir(), "shovel.yaml")
	require.NoError(t, os.WriteFile(path, []byte(out), 0o600))
	code, out, errOut = runCaptured(t, "config", "check", "--config", path)
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "ok\n", out)
}

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		name string
		yaml string // "" checks the built-in default
		code int
		want []string // stderr lines, in order
	}{
		{name: "built-in default", code: exitOK},
		{
			name: "file output",
			yaml: `
kafka: {brokers: "k1:9092,k2:9092", topics: [voltha.kpis]}
routes: [{match: {type: slice}, decoder: slice, outputs: [archive]}]
outputs: {archive: {kind: file, path: /var/lib/shovel/kpis.txt, append: false}}
`,
			code: exitOK,
		},
		{
			name: "every semantic problem, each with its key",
			yaml: `
kafka: {brokers: "nohostport", start: first}
routes: [{match: {type: slice}, decoder: nosuch, outputs: [graphite, missing]}]
outputs: {graphite: {kind: carbon-pickle, address: "h:1", fallback: graphite}}
log: {level: loud}
`,
			code: exitUsage,
			want: []string{
				`shovel: kafka.brokers: "nohostport" is not host:port`,
				`shovel: kafka.start: must be "earliest" or "latest", got "first"`,
				`shovel: outputs.graphite.fallback: an output cannot fall back to itself`,
				`shovel: routes[0].decoder: unknown decoder "nosuch"`,
				`shovel: routes[0].outputs[1]: unknown output "missing" (defined: graphite)`,
				`shovel: log.level: must be debug, info, warn or error, got "loud"`,
			},
		},
		{
			name: "unknown key",
			yaml: "kafka: {brokrs: [k:1]}\n",
			code: exitUsage,
			want: []string{`kafka.brokrs: unknown key (known keys here: brokers, group, `},
		},
		{
			name: "plugin's own keys",
			yaml: `
kafka: {brokers: "k1:9092", topics: [voltha.kpis]}
routes: [{match: {type: slice}, decoder: slice, outputs: [archive]}]
outputs: {archive: {kind: file}}
`,
			code: exitUsage,
			want: []string{`shovel: outputs.archive.path: must name a file, or "-" for stdout`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"config", "check"}
			if tt.yaml != "" {
				path := filepath.Join(t.TempDir(), "shovel.yaml")
				require.NoError(t, os.WriteFile(path, []byte(tt.yaml), 0o600))
				args = append(args, "--config", path)
			}
			code, out, errOut := runCaptured(t, args...)
			require.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			if tt.code == exitOK {
				require.Equal(t, "ok\n", out)
				require.Empty(t, errOut)
				return
			}
			require.Empty(t, out, `no "ok" when there are problems`)
			rest := errOut
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				require.GreaterOrEqual(t, i, 0, "missing or out of order: %s\nstderr:\n%s", w, errOut)
				rest = rest[i+len(w):]
			}
			for _, line := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
				require.True(t, strings.HasPrefix(line, "shovel: "), "one problem per line: %q", line)
			}
		})
	}
}

func TestConfigCheckMissingFile(t *testing.T) {
	code, _, errOut := runCaptured(t, "config", "check", "--config", "/does/not/exist.yaml")
	require.Equal(t, exitUsage, code)
	require.Equal(t, "shovel: config: stat /does/not/exist.yaml: no such file or directory\n", errOut)
}

// TestConfigFilesAreReadBounded: a config path that never ends, never
// answers or is huge fails at once, for check and for route, instead of
// filling memory or hanging beyond SIGTERM's reach.
func TestConfigFilesAreReadBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	huge := filepath.Join(dir, "huge.yaml")
	require.NoError(t, os.WriteFile(huge, bytes.Repeat([]byte("# padding\n"), config.MaxConfigBytes/10+1), 0o600))
	for _, tt := range []struct{ path, want string }{
		{"/dev/zero", "shovel: config: /dev/zero: not a regular file (it is a device, which could block or never end)\n"},
		{fifo, "shovel: config: " + fifo + ": not a regular file (it is a named pipe, which could block or never end)\n"},
		{huge, "shovel: config: " + huge + ": too large: larger than the limit of 4 MiB\n"},
	} {
		for _, cmd := range []string{"check", "route"} {
			t.Run(filepath.Base(tt.path)+" "+cmd, func(t *testing.T) {
				args := []string{"route", "--config", tt.path}
				if cmd == "check" {
					args = []string{"config", "check", "--config", tt.path}
				}
				done := make(chan struct{})
				var (
					code   int
					errOut string
				)
				go func() {
					defer close(done)
					code, _, errOut = runCaptured(t, args...)
				}()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("still loading after 10 s")
				}
				require.Equal(t, exitUsage, code)
				require.Equal(t, tt.want, errOut)
			})
		}
	}
}

// TestConfigCheckRefusesBadConsulTokens: a token Consul would refuse on
// every lookup is reported by config check, naming its key.
func TestConfigCheckRefusesBadConsulTokens(t *testing.T) {
	dir := t.TempDir()
	tokenFile := func(content string) string {
		p := filepath.Join(dir, fmt.Sprintf("token%d", len(content)))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	const base = `
kafka: {brokers: "k1:9092", topics: [voltha.kpis]}
routes: [{match: {type: slice}, decoder: slice, outputs: [g]}]
outputs: {g: {kind: carbon-pickle, address: "@carbon"}}
`
	good := tokenFile("0b1c2d3e-aaaa-bbbb-cccc-000000000000\n")
	twoLines := tokenFile("0b1c2d3e\n0b1c2d3e\n")
	for _, tt := range []struct {
		name, consul, want string
	}{
		{"token file with its newline", "{token_file: " + good + "}", ""},
		{"token with a newline", `{token: "0b1c2d3e\n"}`, "shovel: consul: token: has a line break at byte 8 (a secret file's trailing newline?)\n"},
		{"token with a space", `{token: "0b1c 2d3e"}`, "shovel: consul: token: has whitespace at byte 4\n"},
		{"token file of two lines", "{token_file: " + twoLines + "}", "shovel: consul: token_file " + twoLines + ": has a line break at byte 8 (a secret file's trailing newline?)\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "shovel.yaml")
			require.NoError(t, os.WriteFile(path, []byte(base+"consul: "+tt.consul+"\n"), 0o600))
			code, out, errOut := runCaptured(t, "config", "check", "--config", path)
			if tt.want == "" {
				require.Equal(t, exitOK, code, errOut)
				require.Equal(t, "ok\n", out)
				return
			}
			require.Equal(t, exitUsage, code)
			require.Equal(t, tt.want, errOut)
		})
	}
}

func TestConfigCheckWarnsAboutWorldReadableSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shovel.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
kafka:
  brokers: k:9092
  topics: [t]
  settings: {security.protocol: SASL_SSL, sasl.mechanism: PLAIN, sasl.username: u, sasl.password: hunter2}
routes: [{decoder: slice, outputs: [g]}]
outputs: {g: {kind: carbon-pickle, address: "c:2004"}}
`), 0o644))
	require.NoError(t, os.Chmod(path, 0o644))
	code, stdout, stderr := runCaptured(t, "config", "check", "--config", path)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "ok\n", stdout)
	require.Contains(t, stderr, "warning: "+path+" is readable by every user")
	require.NotContains(t, stderr, "hunter2")
}

// TestSignalsStopALoadThatBlocks: SIGTERM stops shovel route while a file
// its config names blocks the load. The config and secret files must be
// regular files, but a decoder's .proto file, or any path on a hung
// network mount, can still block; a FIFO nobody writes to stands for it.
func TestSignalsStopALoadThatBlocks(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "blocks.proto")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	cfg := filepath.Join(dir, "shovel.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
kafka: {brokers: "127.0.0.1:1", topics: [t]}
routes: [{decoder: pb, outputs: [g]}]
decoders: {pb: {kind: protobuf, proto: `+fifo+`, message: x.Y, metrics: [v]}}
outputs: {g: {kind: carbon-pickle, address: "127.0.0.1:2004"}}
`), 0o600))
	p := startProcess(t, "route", "--config", cfg)
	time.Sleep(500 * time.Millisecond) // well into the load, blocked on the FIFO
	require.True(t, p.running(), "the load should block: %s", p.logs)
	took, code := p.signal(t, syscall.SIGTERM)
	require.Less(t, took, 5*time.Second)
	require.Equal(t, exitRuntime, code)
	require.Contains(t, p.logs.String(), "config: loading interrupted: terminated signal received")
}

func TestLoadUntil(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	block := make(chan struct{})
	defer close(block)
	timer := time.AfterFunc(20*time.Millisecond, cancel)
	defer timer.Stop()
	_, err := loadUntil(ctx, func() (*config.Config, error) { <-block; return nil, nil })
	require.ErrorIs(t, err, context.Canceled)

	want := &config.Config{}
	got, err := loadUntil(context.Background(), func() (*config.Config, error) { return want, nil })
	require.NoError(t, err)
	require.Same(t, want, got)
}
