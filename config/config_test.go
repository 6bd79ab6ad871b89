package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDefaultConfigIsTheOriginalShovel: the built-in default reads what
// the original Voltha shovel read (slice KPIs on voltha.kpis) and what a
// current VOLTHA publishes (protobuf Events on voltha.events).
func TestDefaultConfigIsTheOriginalShovel(t *testing.T) {
	c, err := Load("")
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.Equal(t, []string{"localhost:9092"}, c.Kafka.Brokers)
	require.Equal(t, []string{"voltha.kpis", "voltha.events"}, c.Kafka.Topics)
	require.Equal(t, "shovel", c.Kafka.Group)
	require.Equal(t, "earliest", c.Kafka.Start)
	require.Equal(t, "voltha.events", c.Routes[0].Match.Topic)
	require.Equal(t, "voltha-event", c.Routes[0].Decoder)
	require.Equal(t, "slice", c.Routes[1].Match.Type)
	require.Equal(t, "slice", c.Routes[1].Decoder)
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
	require.Equal(t, Limits{OutputRatio: 8, OutputMin: 128 << 10, Memory: 96 << 20}, c.Limits)
	_, err = Build(c, nil)
	require.NoError(t, err)
}

// TestBadFiles checks the exact problems reported for each bad file, all
// of them in one run (what `shovel config check` prints, one per line).
func TestBadFiles(t *testing.T) {
	routerKnown := "address, batch_size, connect_timeout, destinations, distribution, diverse_replicas, fallback, " +
		"flush_interval, kind, max_frame_bytes, on_down, queue_size, reconnect_max, reconnect_min, replication_factor, tls, write_timeout"
	tests := []struct {
		file string
		want []string // every line, in order
	}{
		{"typo.bad.yml", []string{
			"kafka.brokrs: unknown key (known keys here: brokers, group, instance_id, settings, start, topics, workers); did you mean brokers?",
			"kafka.brokers: must not be empty",
		}},
		{"instance-id.bad.yml", []string{
			`kafka.instance_id: "shovel on host1": use 1 to 249 of a-z A-Z 0-9 . _ - (or "none" for no static membership)`,
			"kafka.settings.group.instance.id: managed by shovel (set kafka.instance_id instead)",
		}},
		{"plugin-typo.bad.yml", []string{
			"outputs.g.adress: unknown key (known keys here: " + routerKnown + "); did you mean address?",
		}},
		{"types.bad.yml", []string{
			"kafka.group: expected a string, got a list",
			`limits.output_min: "lots" is not a size in bytes (such as 65536, 64KiB or 256MiB)`,
			`outputs.g.batch_size: expected an integer, got "many"`,
		}},
		{"list.bad.yml", []string{
			"outputs: expected a map of names to settings (name: {key: value}), got a list",
		}},
		{"durations.bad.yml", []string{
			`consul.timeout: "5 s" is not a duration: write a number with a unit, as in 30s, 500ms, 5m or 1h`,
			"outputs.g.flush_interval: 5 has no unit: write 5s for seconds (or ms, m, h)",
			"self_metrics.interval: 1.5 has no unit: write 1.5s for seconds (or ms, m, h)",
			"shutdown_timeout: 30 has no unit: write 30s for seconds (or ms, m, h)",
			"timestamps.max_future: 600 has no unit: write 600s for seconds (or ms, m, h)",
			"outputs.g.write_timeout: 2 has no unit: write 2s for seconds (or ms, m, h)",
		}},
		{"collide.bad.yml", []string{
			"outputs.g: same name as outputs.G (keys and names are case-insensitive): rename one",
			`decoders.slice: has the name of the registered decoder "slice", which routes could no longer name: choose another name`,
		}},
		{"all-at-once.bad.yml", []string{
			`kafka.workers: expected an integer, got "many"`,
			"kafka.grup: unknown key (known keys here: brokers, group, instance_id, settings, start, topics, workers); did you mean group?",
			`routes[0].stop: expected true or false, got "maybe"`,
			"shutdown_timeout: 30 has no unit: write 30s for seconds (or ms, m, h)",
			`kafka.start: must be "earliest" or "latest", got "first"`,
			"outputs.graphite.fallback: the fallback chain loops: graphite -> line -> graphite",
			`log.level: must be debug, info, warn or error, got "loud"`,
			"outputs.graphite.adress: unknown key (known keys here: " + routerKnown + "); did you mean address?",
			"decoders.onu.metrics: name at least one field, or set metrics_object",
		}},
		{"semantics.bad.yml", []string{
			`kafka.brokers: "localhost" is not host:port`,
			`kafka.topics[0]: "^(" is not a valid regular expression: error parsing regexp: missing closing ): ` + "`^(`",
			`kafka.start: must be "earliest" or "latest", got "first"`,
			"kafka.settings.enable.auto.offset.store: managed by shovel (offsets are stored only after delivery)",
			"kafka.settings: sasl.mechanism PLAIN needs sasl.username and sasl.password",
			`kafka.settings.security.protocol: must be SASL_SSL or SASL_PLAINTEXT when sasl.mechanism is set, got ""`,
			"outputs.g.fallback: an output cannot fall back to itself",
			`outputs.h.kind: unknown output kind "carbn" (known: carbon-pickle, carbon-plaintext, file)`,
			`routes[0].decoder: unknown decoder "slyce" (known: carbon-pickle, carbon-plaintext, json, protobuf, slice, voltha-event), and no entry "slyce" under decoders`,
			`routes[0].outputs[1]: unknown output "nope" (defined: g, h)`,
			"routes[0].rules[0]: error parsing regexp: missing closing ): `^(`",
			`log.level: must be debug, info, warn or error, got "loud"`,
			"timestamps.max_age: must not be negative (0 disables the check)",
			`timestamps.out_of_window: must be "reject" or "clamp", got "wrap"`,
			"limits.output_ratio: must be between 1 and 65536, got 0.5",
			"limits.output_min: must be between 4128 bytes (one sample of the longest path) and 1073741824, got 100",
			"limits.memory: must be between 4194304 (4MiB) and 1099511627776 (1TiB) bytes, got 1048576",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Check(filepath.Join("testdata", tt.file), Overrides{})
			require.NotNil(t, c)
			require.Error(t, err)
			require.Equal(t, strings.Join(tt.want, "\n"), err.Error())
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

func TestNotAMap(t *testing.T) {
	_, err := Check("testdata/not-a-map.bad.yml", Overrides{})
	require.EqualError(t, err, "config: testdata/not-a-map.bad.yml: expected a map of sections (kafka:, routes:, outputs: …), got a list")
}

func TestMissingFile(t *testing.T) {
	_, err := Load("testdata/nope.yml")
	require.ErrorContains(t, err, "nope.yml: no such file")
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("SHOVEL_KAFKA_BROKERS", "e1:9092,e2:9092")
	t.Setenv("SHOVEL_KAFKA_TOPICS", "a,b")
	t.Setenv("SHOVEL_KAFKA_GROUP", "from-env")
	t.Setenv("SHOVEL_KAFKA_WORKERS", "4")
	t.Setenv("SHOVEL_KAFKA_SETTINGS_SASL_USERNAME", "user")
	t.Setenv("SHOVEL_SHUTDOWN_TIMEOUT", "3s")
	t.Setenv("SHOVEL_TIMESTAMPS_MAX_FUTURE", "1h")
	t.Setenv("SHOVEL_LOG_LEVEL", "DEBUG")
	t.Setenv("SHOVEL_LOG_FORMAT", "Json")
	t.Setenv("SHOVEL_OUTPUTS_GRAPHITE_ADDRESS", "other:2004")
	t.Setenv("SHOVEL_OUTPUTS_GRAPHITE_BATCH_SIZE", "7")
	t.Setenv("SHOVEL_OUTPUTS_LINE_WRITE_TIMEOUT", "9s")
	t.Setenv("SHOVEL_DECODERS_BIG_MAX_MESSAGE_BYTES", "1024")
	t.Setenv("SHOVEL_ROUTES_1_DECODER", "big")
	t.Setenv("SHOVEL_ROUTES_0_MATCH_TYPE", "other")
	t.Setenv("SHOVEL_HTTP_ADDRESS", "")
	t.Setenv("SHOVEL_KAFKA_WORKRS", "typo")
	t.Setenv("SHOVEL_SERVICE_HOST", "10.0.0.1") // as Kubernetes sets for a service named shovel
	c, err := Check("testdata/good.yml", Overrides{})
	require.NoError(t, err)
	require.Equal(t, []string{"e1:9092", "e2:9092"}, c.Kafka.Brokers)
	require.Equal(t, []string{"a", "b"}, c.Kafka.Topics)
	require.Equal(t, "from-env", c.Kafka.Group)
	require.Equal(t, 4, c.Kafka.Workers)
	require.Equal(t, "user", c.Kafka.Settings["sasl.username"], "settings names are dotted")
	require.Equal(t, "SSL", c.Kafka.Settings["security.protocol"], "the file's other settings stay")
	require.Equal(t, 3*time.Second, c.ShutdownTimeout)
	require.Equal(t, time.Hour, c.Timestamps.MaxFuture)
	require.Equal(t, "debug", c.Log.Level, "enumerated values in any case")
	require.Equal(t, "json", c.Log.Format)
	require.Equal(t, "other:2004", c.Outputs["graphite"].Options["address"])
	require.Equal(t, 7, c.Outputs["graphite"].BatchSize)
	require.Equal(t, "9s", c.Outputs["line"].Options["write_timeout"])
	require.Equal(t, 1024, c.Decoders["big"].Options["max_message_bytes"])
	require.Equal(t, "big", c.Routes[1].Decoder)
	require.Equal(t, "other", c.Routes[0].Match.Type)
	require.Equal(t, "", c.HTTP.Address, "an empty variable sets an empty value")
	require.Equal(t, []string{"SHOVEL_KAFKA_WORKRS", "SHOVEL_SERVICE_HOST"}, c.EnvUnused())
	require.Equal(t, "SHOVEL_KAFKA_BROKERS", EnvName("kafka.brokers"))
	require.Equal(t, "SHOVEL_OUTPUTS_GRAPHITE_LINE_ADDRESS", EnvName("outputs.graphite-line.address"))
	require.Equal(t, "SHOVEL_ROUTES_0_DECODER", EnvName("routes[0].decoder"))
}

// TestEnvironmentErrorsNameTheVariable: a problem caused by a variable
// names it next to the key, and every problem is still reported at once.
func TestEnvironmentErrorsNameTheVariable(t *testing.T) {
	t.Setenv("SHOVEL_KAFKA_WORKERS", "-1")
	t.Setenv("SHOVEL_SHUTDOWN_TIMEOUT", "30")
	t.Setenv("SHOVEL_OUTPUTS_GRAPHITE_BATCH_SIZE", "many")
	t.Setenv("SHOVEL_OUTPUTS_LINE_WRITE_TIMEOUT", "soon")
	t.Setenv("SHOVEL_LOG_LEVEL", "loud")
	_, err := Check("testdata/good.yml", Overrides{})
	require.EqualError(t, err, strings.Join([]string{
		`outputs.graphite.batch_size: expected an integer, got "many" (set by $SHOVEL_OUTPUTS_GRAPHITE_BATCH_SIZE)`,
		"shutdown_timeout: 30 has no unit: write 30s for seconds (or ms, m, h) (set by $SHOVEL_SHUTDOWN_TIMEOUT)",
		"kafka.workers: must not be negative (0: one per CPU) (set by $SHOVEL_KAFKA_WORKERS)",
		`log.level: must be debug, info, warn or error, got "loud" (set by $SHOVEL_LOG_LEVEL)`,
		`outputs.line.write_timeout: "soon" is not a duration: write a number with a unit, as in 30s, 500ms, 5m or 1h (set by $SHOVEL_OUTPUTS_LINE_WRITE_TIMEOUT)`,
	}, "\n"))
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

func TestLogFlags(t *testing.T) {
	c, err := Check("testdata/good.yml", Overrides{LogLevel: "DEBUG", LogFormat: "Json"})
	require.NoError(t, err)
	require.Equal(t, Log{Level: "debug", Format: "json"}, c.Log)
	_, err = Check("testdata/good.yml", Overrides{LogLevel: "loud"})
	require.EqualError(t, err, `log.level: must be debug, info, warn or error, got "loud" (set by --log-level)`)
}

func TestClosestKey(t *testing.T) {
	known := []string{"address", "batch_size", "brokers", "group", "topics"}
	for in, want := range map[string]string{
		"adress": "address", "brokrs": "brokers", "grup": "group", "topcis": "topics", "gruop": "group",
		"batchsize": "batch_size", "color": "", "x": "", "": "",
	} {
		require.Equal(t, want, closest(in, known), in)
	}
}
