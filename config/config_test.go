package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaultConfigIsTheOriginalShovel(t *testing.T) {
	c, err := Load("")
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.Equal(t, []string{"localhost:9092"}, c.Kafka.Brokers)
	require.Equal(t, []string{"voltha.kpis"}, c.Kafka.Topics)
	require.Equal(t, "shovel", c.Kafka.Group)
	require.Equal(t, "earliest", c.Kafka.Start)
	require.Equal(t, "slice", c.Routes[0].Match.Type)
	require.Equal(t, "carbon-pickle", c.Outputs["graphite"].Kind)
	require.Equal(t, "localhost:2004", c.Outputs["graphite"].Options["address"])
	require.Equal(t, "graphite-line", c.Outputs["graphite"].Fallback)
	require.Equal(t, "localhost:2003", c.Outputs["graphite-line"].Options["address"])
	_, err = Build(c, nil)
	require.NoError(t, err)
}

func TestGoodFile(t *testing.T) {
	c, err := Load("testdata/good.yml")
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.Equal(t, []string{"k1:9092", "k2:9092", "k3:9092"}, c.Kafka.Brokers)
	require.Equal(t, []string{"voltha.kpis", `^kpi\..*`}, c.Kafka.Topics)
	require.Equal(t, map[string]any{"security.protocol": "SSL", "fetch.min.bytes": 1024}, c.Kafka.Settings,
		"dotted librdkafka keys must survive viper")
	require.Equal(t, "big", c.Routes[0].Decoder, "names fold to lower case like viper's keys")
	require.Equal(t, []string{"graphite"}, c.Routes[0].Outputs)
	require.Equal(t, "line", c.Outputs["graphite"].Fallback)
	require.Equal(t, 50*time.Millisecond, c.Outputs["graphite"].FlushInterval)
	require.Equal(t, 100, c.Outputs["graphite"].BatchSize)
	require.Equal(t, map[string]any{"address": "carbon:2004"}, c.Outputs["graphite"].Options)
	require.Len(t, c.Routes[0].Rules, 3)
	require.Equal(t, `^voltha\.`, c.Routes[0].Rules[1].Rewrite.Match)
	require.Equal(t, false, *c.Routes[0].Stop)
	require.Nil(t, c.Routes[1].Stop)
	require.Equal(t, 48*time.Hour, c.Timestamps.MaxAge)
	require.Equal(t, DefaultMaxFuture, c.Timestamps.MaxFuture, "unset keys keep their defaults")
	require.Equal(t, "clamp", c.Timestamps.OutOfWindow)
	require.Equal(t, "shovel.dead", c.DeadLetter.Topic)
	require.Equal(t, Limits{OutputRatio: 8, OutputMin: 128 << 10}, c.Limits)
	_, err = Build(c, nil)
	require.NoError(t, err)
}

func TestBadFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string // each must appear, one problem per line
	}{
		{"typo.bad.yml", []string{"kafka.brokrs: unknown key (known keys here: brokers, group, settings, start, topics, workers)"}},
		{"plugin-typo.bad.yml", []string{"outputs.g.adress: unknown key (known keys here: address,"}},
		{"types.bad.yml", []string{"kafka.group: expected type 'string'", "outputs.g.batch_size:",
			`limits.output_min: "lots" is not a size in bytes`}},
		{"semantics.bad.yml", []string{
			`kafka.brokers: "localhost" is not host:port`,
			`kafka.topics[0]: "^(" is not a valid regular expression`,
			`kafka.start: must be "earliest" or "latest", got "first"`,
			"kafka.settings.enable.auto.offset.store: managed by shovel",
			"kafka.settings: sasl.mechanism PLAIN needs sasl.username and sasl.password",
			`kafka.settings.security.protocol: must be SASL_SSL or SASL_PLAINTEXT when sasl.mechanism is set, got ""`,
			`routes[0].decoder: unknown decoder "slyce" (known: `,
			`routes[0].outputs[1]: unknown output "nope" (defined: g, h)`,
			"outputs.g.fallback: an output cannot fall back to itself",
			`outputs.h.kind: unknown output kind "carbn" (known: carbon-pickle, carbon-plaintext`,
			`log.level: must be debug, info, warn or error, got "loud"`,
			`routes[0].rules[0]: error parsing regexp: missing closing ): ` + "`^(`",
			"timestamps.max_age: must not be negative",
			`timestamps.out_of_window: must be "reject" or "clamp", got "wrap"`,
			"limits.output_ratio: must be between 1 and 65536, got 0.5",
			"limits.output_min: must be between 4128 bytes (one sample of the longest path) and 1073741824, got 100",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				_, err = Build(c, nil)
			}
			require.Error(t, err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), len(tt.want), "one line per problem:\n%s", err)
		})
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"65536": 65536, "64KiB": 64 << 10, " 256 MiB ": 256 << 20, "1GiB": 1 << 30,
		"64kB": 64000, "2MB": 2e6, "1GB": 1e9, "512B": 512, "0": 0,
	} {
		got, err := ParseByteSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "KiB", "-1", "1.5MiB", "10 potatoes", "9999999999999GiB"} {
		_, err := ParseByteSize(in)
		require.Error(t, err, in)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("testdata/nope.yml")
	require.ErrorContains(t, err, "nope.yml: no such file")
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("SHOVEL_KAFKA_BROKERS", "e1:9092,e2:9092")
	t.Setenv("SHOVEL_KAFKA_TOPICS", "a,b")
	t.Setenv("SHOVEL_KAFKA_GROUP", "from-env")
	t.Setenv("SHOVEL_SHUTDOWN_TIMEOUT", "3s")
	c, err := Load("testdata/good.yml")
	require.NoError(t, err)
	require.Equal(t, []string{"e1:9092", "e2:9092"}, c.Kafka.Brokers)
	require.Equal(t, []string{"a", "b"}, c.Kafka.Topics)
	require.Equal(t, "from-env", c.Kafka.Group)
	require.Equal(t, 3*time.Second, c.ShutdownTimeout)
	require.Equal(t, "SHOVEL_KAFKA_BROKERS", EnvKeys()["kafka.brokers"])
}

func TestOverrides(t *testing.T) {
	tests := []struct {
		name       string
		o          Overrides
		wantPickle string
		wantLine   string
		wantErr    string
	}{
		{"host and port", Overrides{Host: "127.0.0.1", Port: 12004}, "127.0.0.1:12004", "127.0.0.1:2003", ""},
		{"line port only", Overrides{LinePort: 12003}, "localhost:2004", "localhost:12003", ""},
		{"bad port", Overrides{Port: 70000}, "", "", "-p/--port: port must be from 1 to 65535, got 70000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("")
			require.NoError(t, err)
			err = c.Apply(tt.o)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantPickle, c.Outputs["graphite"].Options["address"])
			require.Equal(t, tt.wantLine, c.Outputs["graphite-line"].Options["address"])
		})
	}

	c, err := Load("")
	require.NoError(t, err)
	require.NoError(t, c.Apply(Overrides{Kafka: "@kafka", Consul: "consul:8500", Topic: "t", Group: "g"}))
	require.Equal(t, []string{"@kafka"}, c.Kafka.Brokers)
	require.Equal(t, "consul:8500", c.Consul.Address)
	require.Equal(t, []string{"t"}, c.Kafka.Topics)
	require.Equal(t, "g", c.Kafka.Group)
	require.NoError(t, c.Validate())

	// A config with no Carbon output cannot take -H.
	dir := t.TempDir()
	path := filepath.Join(dir, "file.yml")
	require.NoError(t, os.WriteFile(path, []byte(`
kafka: {brokers: "k:9092", topics: [t]}
routes: [{decoder: slice, outputs: [x]}]
outputs: {x: {kind: carbon-plaintext, address: "k:2003"}}
`), 0o600))
	c, err = Load(path)
	require.NoError(t, err)
	require.EqualError(t, c.Apply(Overrides{Port: 2004}), "-p/--port: the config has no carbon-pickle output")

	// Nor can a Carbon cluster, which has no single address.
	path = filepath.Join(dir, "cluster.yml")
	require.NoError(t, os.WriteFile(path, []byte(`
kafka: {brokers: "k:9092", topics: [t]}
routes: [{decoder: slice, outputs: [x]}]
outputs: {x: {kind: carbon-pickle, destinations: ["a:2004", "b:2004"], distribution: carbon_ch}}
`), 0o600))
	c, err = Load(path)
	require.NoError(t, err)
	require.EqualError(t, c.Apply(Overrides{Host: "h", Port: 2004}), "-H/--host: the config has no carbon-pickle or carbon-plaintext output to point at h")
}
