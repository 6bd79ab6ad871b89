// Package config loads shovel's YAML configuration with viper, applies
// environment and command-line overrides, checks it once at start-up and
// builds the router's plugins from it. Errors name the offending key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/shovel-metrics/shovel/configs"
	"github.com/shovel-metrics/shovel/internal/limitedfile"
	"github.com/shovel-metrics/shovel/router/consul"
)

// Config is the whole configuration file.
type Config struct {
	Kafka    Kafka              `mapstructure:"kafka"`
	Consul   consul.Config      `mapstructure:"consul"`
	Routes   []Route            `mapstructure:"routes"`
	Decoders map[string]Decoder `mapstructure:"decoders"`
	Outputs  map[string]Output  `mapstructure:"outputs"`
	Log      Log                `mapstructure:"log"`
	// Timestamps bounds sample times relative to the clock.
	Timestamps Timestamps `mapstructure:"timestamps"`
	// HTTP serves /metrics, /healthz and /readyz.
	HTTP HTTP `mapstructure:"http"`
	// SelfMetrics sends shovel's own metrics through its outputs.
	SelfMetrics SelfMetrics `mapstructure:"self_metrics"`
	// DeadLetter is the topic for messages that cannot be used.
	DeadLetter DeadLetter `mapstructure:"dead_letter"`
	// ShutdownTimeout bounds the flush on SIGINT/SIGTERM.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// Limits bounds what shovel does for any one message.
	Limits Limits `mapstructure:"limits"`
}

// Kafka is the `kafka:` section.
type Kafka struct {
	// Brokers are host:port pairs, or one "@name" to look up in Consul.
	Brokers []string `mapstructure:"brokers"`
	Topics  []string `mapstructure:"topics"`
	Group   string   `mapstructure:"group"`
	Start   string   `mapstructure:"start"`
	// Settings are librdkafka consumer properties, passed through.
	Settings map[string]any `mapstructure:"settings"`
	// Workers is how many partitions are decoded in parallel, each in
	// order; 0 means one per CPU.
	Workers int `mapstructure:"workers"`
}

// Route is one entry of `routes:`.
type Route struct {
	Name    string   `mapstructure:"name"`
	Match   Match    `mapstructure:"match"`
	Decoder string   `mapstructure:"decoder"`
	Rules   []Rule   `mapstructure:"rules"`
	Outputs []string `mapstructure:"outputs"`
	// Stop ends matching at this route (the default); false lets later
	// routes see the message too.
	Stop *bool `mapstructure:"stop"`
}

// Rule is one entry of a route's `rules:`; exactly one key is set.
type Rule struct {
	Keep        string   `mapstructure:"keep"`
	Drop        string   `mapstructure:"drop"`
	Rewrite     *Rewrite `mapstructure:"rewrite"`
	AddPrefix   string   `mapstructure:"add_prefix"`
	StripPrefix string   `mapstructure:"strip_prefix"`
}

// Rewrite is a rule's `rewrite: {match, replace}`.
type Rewrite struct {
	Match   string `mapstructure:"match"`
	Replace string `mapstructure:"replace"`
}

// HTTP is the `http:` section.
type HTTP struct {
	// Address is host:port for the status endpoints; empty disables them.
	Address string `mapstructure:"address"`
}

// SelfMetrics is the `self_metrics:` section.
type SelfMetrics struct {
	// Interval between reports; 0 disables them.
	Interval time.Duration `mapstructure:"interval"`
	// Prefix of every path; {host} is the host name with dots as '_'.
	Prefix  string   `mapstructure:"prefix"`
	Outputs []string `mapstructure:"outputs"`
}

// DefaultSelfMetricsPrefix is what carbon-relay users expect.
const DefaultSelfMetricsPrefix = "shovel.{host}"

// DefaultHTTPAddress is loopback: the endpoints expose internals.
const DefaultHTTPAddress = "127.0.0.1:9108"

// Timestamps is the `timestamps:` section.
type Timestamps struct {
	MaxAge      time.Duration `mapstructure:"max_age"`
	MaxFuture   time.Duration `mapstructure:"max_future"`
	OutOfWindow string        `mapstructure:"out_of_window"`
}

// DeadLetter is the `dead_letter:` section; an empty topic disables it.
type DeadLetter struct {
	Topic string `mapstructure:"topic"`
	// Settings are librdkafka producer properties, applied over the
	// security-related kafka.settings the dead-letter producer inherits.
	Settings map[string]any `mapstructure:"settings"`
}

// Match is a route's `match:`.
type Match struct {
	Type    string            `mapstructure:"type"`
	Topic   string            `mapstructure:"topic"`
	Headers map[string]string `mapstructure:"headers"`
}

// Decoder is one entry of `decoders:`: a registered decoder kind and its
// own settings, which the decoder decodes and checks itself.
type Decoder struct {
	Kind    string         `mapstructure:"kind"`
	Options map[string]any `mapstructure:",remain"`
}

// Output is one entry of `outputs:`. The router's policy keys are here; all
// other keys belong to the output kind, which decodes and checks them.
type Output struct {
	Kind          string         `mapstructure:"kind"`
	Fallback      string         `mapstructure:"fallback"`
	BatchSize     int            `mapstructure:"batch_size"`
	FlushInterval time.Duration  `mapstructure:"flush_interval"`
	QueueSize     int            `mapstructure:"queue_size"`
	Options       map[string]any `mapstructure:",remain"`
}

// Log is the `log:` section.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Defaults for keys a file may leave out.
const (
	DefaultGroup           = "shovel"
	DefaultStart           = "earliest"
	DefaultShutdownTimeout = 30 * time.Second
	// A wrong clock should not write into whisper files years away.
	DefaultMaxAge    = 365 * 24 * time.Hour
	DefaultMaxFuture = 10 * time.Minute
)

// envKeys are the scalar keys that SHOVEL_* environment variables override
// (SHOVEL_KAFKA_BROKERS for kafka.brokers). Lists take comma-separated values.
var envKeys = []string{
	"kafka.brokers", "kafka.topics", "kafka.group", "kafka.start",
	"consul.address", "consul.token", "consul.token_file", "consul.datacenter", "consul.timeout",
	"log.level", "log.format", "shutdown_timeout", "http.address",
}

// EnvKeys returns the keys that environment variables can override, with
// the variable for each, for the README and `shovel config`.
func EnvKeys() map[string]string {
	out := make(map[string]string, len(envKeys))
	for _, k := range envKeys {
		out[k] = "SHOVEL_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
	}
	return out
}

// MaxConfigBytes is the largest config file Load reads: a real one is a
// few kilobytes, and a path to a device or a runaway generated file must
// not fill memory (docs/limits.md).
const MaxConfigBytes = 4 << 20

// MaxSecretBytes is the largest ${file:PATH} secret: credentials, keys and
// PEM certificates are a few kilobytes.
const MaxSecretBytes = 64 << 10

// Load reads the file at path, or the built-in default when path is empty,
// applies SHOVEL_* environment variables and fills defaults. It checks the
// file's shape (unknown keys, wrong types) but not its meaning: call
// Validate after applying command-line overrides.
func Load(path string) (*Config, error) {
	// "::" as viper's key delimiter: librdkafka property names contain
	// dots, and viper would otherwise split kafka.settings."security.protocol".
	v := viper.NewWithOptions(viper.KeyDelimiter("::"))
	v.SetConfigType("yaml")
	if path == "" {
		if err := v.ReadConfig(bytes.NewReader(configs.Default)); err != nil {
			return nil, fmt.Errorf("config: built-in default: %w", err)
		}
	} else {
		data, err := limitedfile.Read(path, MaxConfigBytes)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	v.SetEnvPrefix("SHOVEL")
	v.SetEnvKeyReplacer(strings.NewReplacer("::", "_"))
	for _, k := range envKeys {
		if err := v.BindEnv(strings.ReplaceAll(k, ".", "::")); err != nil {
			return nil, fmt.Errorf("config: bind %s: %w", k, err)
		}
	}
	cfg := &Config{
		Kafka:           Kafka{Group: DefaultGroup, Start: DefaultStart},
		Consul:          consul.DefaultConfig(),
		Log:             Log{Level: "info", Format: "text"},
		Timestamps:      Timestamps{MaxAge: DefaultMaxAge, MaxFuture: DefaultMaxFuture, OutOfWindow: "reject"},
		HTTP:            HTTP{Address: DefaultHTTPAddress},
		SelfMetrics:     SelfMetrics{Prefix: DefaultSelfMetricsPrefix},
		ShutdownTimeout: DefaultShutdownTimeout,
		Limits:          DefaultLimits(),
	}
	if err := decodeStrict(v.AllSettings(), cfg, ""); err != nil {
		if path != "" {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg.normalize()
	if err := cfg.resolveSecrets(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// normalize lower-cases names: viper folds map keys (output and decoder
// names) to lower case, so references to them must fold the same way.
func (c *Config) normalize() {
	for i := range c.Routes {
		r := &c.Routes[i]
		r.Decoder = strings.ToLower(r.Decoder)
		for j := range r.Outputs {
			r.Outputs[j] = strings.ToLower(r.Outputs[j])
		}
	}
	for name, o := range c.Outputs {
		o.Fallback = strings.ToLower(o.Fallback)
		c.Outputs[name] = o
	}
	for i, o := range c.SelfMetrics.Outputs {
		c.SelfMetrics.Outputs[i] = strings.ToLower(o)
	}
	// A comma-separated string in a YAML list entry is split like the env form.
	var brokers []string
	for _, b := range c.Kafka.Brokers {
		for _, p := range strings.Split(b, ",") {
			if p = strings.TrimSpace(p); p != "" {
				brokers = append(brokers, p)
			}
		}
	}
	c.Kafka.Brokers = brokers
}

// decodeStrict decodes in into out and turns every key that out has no
// field for into an error naming its full path and the keys that exist.
func decodeStrict(in any, out any, prefix string) error {
	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:   out,
		Metadata: &md,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			byteSizeHook,
		),
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(in); err != nil {
		return cleanDecodeError(err, prefix)
	}
	if len(md.Unused) == 0 {
		return nil
	}
	sort.Strings(md.Unused)
	errs := make([]error, 0, len(md.Unused))
	for _, key := range md.Unused {
		full := joinKey(prefix, key)
		if known := knownKeys(reflect.TypeOf(out), mapKeyRE.ReplaceAllString(key, ".$1")); len(known) > 0 {
			errs = append(errs, fmt.Errorf("%s: unknown key (known keys here: %s)", full, strings.Join(known, ", ")))
		} else {
			errs = append(errs, fmt.Errorf("%s: unknown key", full))
		}
	}
	return errors.Join(errs...)
}

// mapKeyRE finds mapstructure's map-key notation, outputs[graphite], which
// shovel writes as outputs.graphite (list indexes, routes[0], stay).
var mapKeyRE = regexp.MustCompile(`\[([^\]0-9][^\]]*)\]`)

func joinKey(prefix, key string) string {
	key = mapKeyRE.ReplaceAllString(key, ".$1")
	if prefix == "" {
		return key
	}
	if strings.HasPrefix(key, "[") {
		return prefix + key
	}
	return prefix + "." + key
}

var decodeErrRE = regexp.MustCompile(`'([^']*)'`)

// cleanDecodeError rewrites mapstructure's type errors ("'kafka.group'
// expected type 'string', got unconvertible type '[]interface {}'") into
// one line per problem with the full key path.
func cleanDecodeError(err error, prefix string) error {
	var errs []error
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if line == "" || strings.HasPrefix(line, "decoding failed") || strings.HasSuffix(line, "error(s) decoding:") {
			continue
		}
		if m := decodeErrRE.FindStringSubmatchIndex(line); m != nil && m[0] == 0 {
			key := line[m[2]:m[3]]
			rest := strings.TrimSpace(line[m[1]:])
			rest = strings.ReplaceAll(rest, "interface {}", "any")
			errs = append(errs, fmt.Errorf("%s: %s", joinKey(prefix, key), rest))
			continue
		}
		errs = append(errs, fmt.Errorf("%s", joinKey(prefix, line)))
	}
	if len(errs) == 0 {
		return err
	}
	return errors.Join(errs...)
}

// knownKeys walks t along the dotted key path of an unknown key and returns
// the mapstructure keys of the struct that should have held it.
func knownKeys(t reflect.Type, key string) []string {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		t = deref(t)
		if i := strings.IndexByte(p, '['); i >= 0 {
			p = p[:i]
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByTag(t, p)
			if !ok {
				return nil
			}
			t = f.Type
		case reflect.Map:
			t = t.Elem()
		default:
			return nil
		}
		if t = deref(t); t.Kind() == reflect.Slice {
			t = t.Elem()
		}
	}
	t = deref(t)
	if t.Kind() == reflect.Map {
		t = deref(t.Elem())
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	names := tagNames(t)
	sort.Strings(names)
	return names
}

// tagNames lists a struct's mapstructure keys, those of squashed embedded
// structs included (plugins share keys that way).
func tagNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		switch {
		case opts == "squash" && deref(t.Field(i).Type).Kind() == reflect.Struct:
			names = append(names, tagNames(deref(t.Field(i).Type))...)
		case name != "" && name != "-":
			names = append(names, name)
		}
	}
	return names
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		tag, opts, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		if opts == "squash" && deref(t.Field(i).Type).Kind() == reflect.Struct {
			if f, ok := fieldByTag(deref(t.Field(i).Type), name); ok {
				return f, true
			}
			continue
		}
		if tag == name {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// SelfMetricsPrefix returns the prefix with {host} filled in.
func (c *Config) SelfMetricsPrefix() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return strings.ReplaceAll(c.SelfMetrics.Prefix, "{host}", strings.ReplaceAll(host, ".", "_"))
}

// pluginDecoder returns the DecodeConfig a plugin calls to read its own
// keys from opts, strictly, with errors prefixed by the plugin's key path.
func pluginDecoder(opts map[string]any, prefix string) func(into any) error {
	return func(into any) error {
		if opts == nil {
			return nil
		}
		return decodeStrict(opts, into, prefix)
	}
}
