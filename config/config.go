// Package config loads shovel's YAML configuration, applies environment and
// command-line overrides, checks it once at start-up and builds the router's
// plugins from it. Every problem of a file is reported at once, each naming
// its key.
package config

import (
	"os"
	"strings"
	"time"

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

	// env maps each key set by a SHOVEL_* variable to the variable, or by
	// a command-line flag (--log-level) to the flag.
	env map[string]string
	// envUnused are SHOVEL_* variables that name no key.
	envUnused []string
	// undecodable are the keys whose values had the wrong type: checks of
	// their meaning would only repeat the problem.
	undecodable []string
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
	// Workers is how many messages are decoded at once; 0 means one per
	// CPU. Each assigned partition has its own goroutine and stays in
	// order; a message holds a worker only while it is decoded.
	Workers int `mapstructure:"workers"`
	// InstanceID is the consumer's group.instance.id (static membership:
	// a restarted shovel gets its partitions back at once). "" picks
	// "shovel-<hostname>-<n>", unique per host; "none" turns it off.
	InstanceID string `mapstructure:"instance_id"`
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
	// Graphite tag rules (docs/tags.md).
	KeepTag   string     `mapstructure:"keep_tag"`
	DropTag   string     `mapstructure:"drop_tag"`
	AddTag    string     `mapstructure:"add_tag"`
	RemoveTag string     `mapstructure:"remove_tag"`
	RenameTag *RenameTag `mapstructure:"rename_tag"`
	TagToPath *TagToPath `mapstructure:"tag_to_path"`
	PathToTag *PathToTag `mapstructure:"path_to_tag"`
}

// RenameTag is a rule's `rename_tag: {from, to}`.
type RenameTag struct {
	From string `mapstructure:"from"`
	To   string `mapstructure:"to"`
}

// TagToPath is a rule's `tag_to_path: {tag, segment}`.
type TagToPath struct {
	Tag     string `mapstructure:"tag"`
	Segment int    `mapstructure:"segment"`
}

// PathToTag is a rule's `path_to_tag: {segment, tag}`.
type PathToTag struct {
	Segment int    `mapstructure:"segment"`
	Tag     string `mapstructure:"tag"`
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
	// Runtime adds Go's and the process's own series (go_*, process_*:
	// about 40 per host) to those of shovel.
	Runtime bool `mapstructure:"runtime"`
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
	// UnreadyAfter is how long dead letters may wait for the broker before
	// /readyz reports the dead-letter producer not ready.
	UnreadyAfter time.Duration `mapstructure:"unready_after"`
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
	// DefaultDeadLetterUnreadyAfter: longer than librdkafka's reconnect
	// backoff and a leader election, short enough to page on.
	DefaultDeadLetterUnreadyAfter = 30 * time.Second
)

// MaxConfigBytes is the largest config file Load reads: a real one is a
// few kilobytes, and a path to a device or a runaway generated file must
// not fill memory (docs/limits.md).
const MaxConfigBytes = 4 << 20

// MaxSecretBytes is the largest ${file:PATH} secret: credentials, keys and
// PEM certificates are a few kilobytes.
const MaxSecretBytes = 64 << 10

// normalize lower-cases names: viper folds map keys (output and decoder
// names) to lower case, so references to them must fold the same way.
func (c *Config) normalize() {
	// Enumerated values are accepted in any case (SHOVEL_LOG_LEVEL=DEBUG).
	for _, p := range []*string{&c.Log.Level, &c.Log.Format, &c.Kafka.Start, &c.Timestamps.OutOfWindow} {
		*p = strings.ToLower(strings.TrimSpace(*p))
	}
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

// SelfMetricsPrefix returns the prefix with {host} filled in.
func (c *Config) SelfMetricsPrefix() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return strings.ReplaceAll(c.SelfMetrics.Prefix, "{host}", strings.ReplaceAll(host, ".", "_"))
}
