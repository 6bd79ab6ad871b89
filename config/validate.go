package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/outputs"
	"github.com/shovel-metrics/shovel/router"
	"github.com/shovel-metrics/shovel/router/metric"
)

// routerRules converts a route's rules to the router's form.
func (r Route) routerRules() []router.Rule {
	out := make([]router.Rule, len(r.Rules))
	for i, x := range r.Rules {
		out[i] = router.Rule{Keep: x.Keep, Drop: x.Drop, AddPrefix: x.AddPrefix, StripPrefix: x.StripPrefix,
			KeepTag: x.KeepTag, DropTag: x.DropTag, AddTag: x.AddTag, RemoveTag: x.RemoveTag}
		if x.Rewrite != nil {
			out[i].Rewrite = &router.Rewrite{Match: x.Rewrite.Match, Replace: x.Rewrite.Replace}
		}
		if x.RenameTag != nil {
			out[i].RenameTag = &router.RenameTag{From: x.RenameTag.From, To: x.RenameTag.To}
		}
		if x.TagToPath != nil {
			out[i].TagToPath = &router.TagToPath{Tag: x.TagToPath.Tag, Segment: x.TagToPath.Segment}
		}
		if x.PathToTag != nil {
			out[i].PathToTag = &router.PathToTag{Segment: x.PathToTag.Segment, Tag: x.PathToTag.Tag}
		}
	}
	return out
}

// validInstanceID is what Kafka accepts as a group.instance.id.
var validInstanceID = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// managedSettings are librdkafka properties shovel sets itself, because its
// delivery guarantee or its own keys depend on them.
var managedSettings = map[string]string{
	"enable.auto.offset.store": "offsets are stored only after delivery",
	"group.id":                 "set kafka.group instead",
	"bootstrap.servers":        "set kafka.brokers instead",
	"metadata.broker.list":     "set kafka.brokers instead",
	"auto.offset.reset":        "set kafka.start instead",
	"group.instance.id":        "set kafka.instance_id instead",
}

// Validate checks the configuration's meaning without any I/O — every
// decoder's and output's own keys included — and returns every problem it
// finds, one per line, each naming its key.
func (c *Config) Validate() error {
	return problemsOf(c.validate()).err(c.env, c.undecodable)
}

func problemsOf(err error) problems {
	var ps problems
	ps.addErr(err)
	return ps
}

func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	// kafka
	switch {
	case len(c.Kafka.Brokers) == 0:
		bad("kafka.brokers", "must not be empty")
	case strings.HasPrefix(c.Kafka.Brokers[0], "@"):
		if len(c.Kafka.Brokers) > 1 {
			bad("kafka.brokers", "%q: a Consul service must be the only entry", c.Kafka.Brokers[0])
		} else if len(c.Kafka.Brokers[0]) == 1 {
			bad("kafka.brokers", `"@" needs a service name, as in "@kafka"`)
		}
	default:
		for _, b := range c.Kafka.Brokers {
			if err := checkHostPort(b); err != nil {
				bad("kafka.brokers", "%v", err)
			}
		}
	}
	if len(c.Kafka.Topics) == 0 {
		bad("kafka.topics", "must name at least one topic")
	}
	for i, t := range c.Kafka.Topics {
		key := fmt.Sprintf("kafka.topics[%d]", i)
		switch {
		case strings.TrimSpace(t) == "":
			bad(key, "must not be empty")
		case strings.HasPrefix(t, "^"):
			if _, err := regexp.Compile(t); err != nil {
				bad(key, "%q is not a valid regular expression: %v", t, err)
			}
		}
	}
	if c.Kafka.Group == "" {
		bad("kafka.group", "must not be empty")
	}
	if c.Kafka.Start != "earliest" && c.Kafka.Start != "latest" {
		bad("kafka.start", `must be "earliest" or "latest", got %q`, c.Kafka.Start)
	}
	if id := c.Kafka.InstanceID; id != "" && id != "none" && !validInstanceID.MatchString(id) {
		bad("kafka.instance_id", `%q: use 1 to 249 of a-z A-Z 0-9 . _ - (or "none" for no static membership)`, id)
	}
	if c.Kafka.Workers < 0 {
		bad("kafka.workers", "must not be negative (0: one per CPU)")
	}
	errs = append(errs, checkKafkaSettings(c.Kafka.Settings)...)

	if err := c.Consul.Validate(); err != nil {
		errs = append(errs, err)
	}

	// decoders
	for _, name := range sortedKeys(c.Decoders) {
		d := c.Decoders[name]
		if d.Kind == "" {
			bad("decoders."+name+".kind", "must name a decoder (known: %s)", strings.Join(decoders.Names(), ", "))
		} else if _, err := decoders.Lookup(d.Kind); err != nil {
			bad("decoders."+name+".kind", "%v", err)
		}
		if _, err := decoders.Lookup(name); err == nil {
			bad("decoders."+name, "has the name of the registered decoder %q, which routes could no longer name: choose another name", name)
		}
	}

	// outputs
	if len(c.Outputs) == 0 {
		bad("outputs", "must define at least one output")
	}
	for _, name := range sortedKeys(c.Outputs) {
		o := c.Outputs[name]
		key := "outputs." + name
		if o.Kind == "" {
			bad(key+".kind", "must name an output kind (known: %s)", strings.Join(outputs.Kinds(), ", "))
		} else if _, err := outputs.Lookup(o.Kind); err != nil {
			bad(key+".kind", "%v", err)
		}
		if o.Fallback != "" {
			if o.Fallback == name {
				bad(key+".fallback", "an output cannot fall back to itself")
			} else if _, ok := c.Outputs[o.Fallback]; !ok {
				bad(key+".fallback", "unknown output %q (defined: %s)", o.Fallback, strings.Join(sortedKeys(c.Outputs), ", "))
			} else if loop := c.fallbackLoop(name); loop != nil {
				bad(key+".fallback", "the fallback chain loops: %s", strings.Join(loop, " -> "))
			}
		}
		if o.BatchSize < 0 {
			bad(key+".batch_size", "must not be negative")
		}
		if o.QueueSize < 0 {
			bad(key+".queue_size", "must not be negative")
		}
		if o.FlushInterval < 0 {
			bad(key+".flush_interval", "must not be negative")
		}
	}

	// routes
	if len(c.Routes) == 0 {
		bad("routes", "must define at least one route")
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Decoder == "" {
			bad(key+".decoder", "must name a decoder")
		} else if _, ok := c.Decoders[r.Decoder]; !ok {
			if _, err := decoders.Lookup(r.Decoder); err != nil {
				bad(key+".decoder", "%v, and no entry %q under decoders", err, r.Decoder)
			}
		}
		if len(r.Outputs) == 0 {
			bad(key+".outputs", "must name at least one output")
		}
		for j, o := range r.Outputs {
			if _, ok := c.Outputs[o]; !ok && !c.isUndecodable("outputs") {
				bad(fmt.Sprintf("%s.outputs[%d]", key, j), "unknown output %q (defined: %s)", o, strings.Join(sortedKeys(c.Outputs), ", "))
			}
		}
		if _, err := router.CompileRules(r.routerRules()); err != nil {
			bad(key+"."+strings.SplitN(err.Error(), ": ", 2)[0], "%s", strings.SplitN(err.Error(), ": ", 2)[1])
		}
		if strings.HasPrefix(r.Match.Topic, "^") {
			if _, err := regexp.Compile(r.Match.Topic); err != nil {
				bad(key+".match.topic", "%q is not a valid regular expression: %v", r.Match.Topic, err)
			}
		}
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", `must be debug, info, warn or error, got %q`, c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", `must be text or json, got %q`, c.Log.Format)
	}
	if c.Timestamps.MaxAge < 0 {
		bad("timestamps.max_age", "must not be negative (0 disables the check)")
	}
	if c.Timestamps.MaxFuture < 0 {
		bad("timestamps.max_future", "must not be negative (0 disables the check)")
	}
	if o := c.Timestamps.OutOfWindow; o != "reject" && o != "clamp" {
		bad("timestamps.out_of_window", `must be "reject" or "clamp", got %q`, o)
	}
	if t := c.DeadLetter.Topic; t != "" && strings.ContainsAny(t, " ^*") {
		bad("dead_letter.topic", "%q is not a topic name", t)
	} else if t != "" {
		if i := readBy(c.Kafka.Topics, t); i >= 0 {
			bad("dead_letter.topic", "%q is read by kafka.topics[%d] %q: shovel would consume its own dead letters "+
				"(choose a topic that kafka.topics neither names nor matches)", t, i, c.Kafka.Topics[i])
		}
	}
	if c.DeadLetter.UnreadyAfter <= 0 {
		bad("dead_letter.unready_after", "must be positive, got %s", c.DeadLetter.UnreadyAfter)
	}
	for _, k := range sortedKeys(c.DeadLetter.Settings) {
		if _, ok := managedSettings[k]; ok {
			bad("dead_letter.settings."+k, "managed by shovel")
		}
	}
	if a := c.HTTP.Address; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil {
			bad("http.address", "%q is not host:port (empty disables the endpoints)", a)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("http.address", "%q: port must be a number from 0 to 65535", a)
		}
	}
	if sm := c.SelfMetrics; sm.Interval < 0 {
		bad("self_metrics.interval", "must not be negative (0 disables self-metrics)")
	} else if sm.Interval > 0 {
		if len(sm.Outputs) == 0 {
			bad("self_metrics.outputs", "must name at least one output when self_metrics.interval is set")
		}
		for i, o := range sm.Outputs {
			if _, ok := c.Outputs[o]; !ok {
				bad(fmt.Sprintf("self_metrics.outputs[%d]", i), "unknown output %q (defined: %s)", o, strings.Join(sortedKeys(c.Outputs), ", "))
			}
		}
		if p := strings.ReplaceAll(sm.Prefix, "{host}", "h"); !metric.ValidPath(p) {
			bad("self_metrics.prefix", "%q is not a valid metric path", sm.Prefix)
		}
	}
	c.Limits.validate(bad)
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	// The plugins check their own keys: each output and decoder of a known
	// kind is built as Build would, without any I/O.
	var ps problems
	c.checkPlugins(&ps)
	for _, p := range ps {
		errs = append(errs, p)
	}
	return errors.Join(errs...)
}

// readBy returns the index of the first of the consumer's topics that
// names or, as a "^" regular expression, matches topic; -1 if none does.
// librdkafka matches a pattern anywhere in the name unless it is anchored,
// as Go's MatchString does.
func readBy(topics []string, topic string) int {
	for i, t := range topics {
		if t == topic {
			return i
		}
		if strings.HasPrefix(t, "^") {
			if re, err := regexp.Compile(t); err == nil && re.MatchString(topic) {
				return i
			}
		}
	}
	return -1
}

// isUndecodable reports whether key had a value of the wrong type, so
// references into it cannot be checked.
func (c *Config) isUndecodable(key string) bool {
	for _, k := range c.undecodable {
		if k == key {
			return true
		}
	}
	return false
}

// fallbackLoop returns the loop of fallbacks that start is part of, from
// start back to start, when start is the first of its outputs by name (so
// that a loop is reported once); nil otherwise.
func (c *Config) fallbackLoop(start string) []string {
	chain := []string{start}
	for cur := c.Outputs[start].Fallback; cur != ""; cur = c.Outputs[cur].Fallback {
		if _, ok := c.Outputs[cur]; !ok || cur < start {
			return nil
		}
		chain = append(chain, cur)
		if cur == start {
			return chain
		}
		if len(chain) > len(c.Outputs) {
			return nil // a loop that start only leads into
		}
	}
	return nil
}

// checkPlugins builds every output and every decoder the config defines
// or names, as Build would, and adds their complaints at full keys.
func (c *Config) checkPlugins(ps *problems) {
	env := func(name string) metric.Env {
		return metric.Env{Name: name, Logger: slog.New(slog.DiscardHandler), Resolver: noResolver{}}
	}
	for _, name := range sortedKeys(c.Outputs) {
		o, key := c.Outputs[name], "outputs."+name
		if f, err := outputs.Lookup(o.Kind); err == nil {
			if _, err := f(pluginDecoder(o.Options, key, routerOutputKeys), env(name)); err != nil {
				pluginErrorLines(err, key, ps)
			}
		}
	}
	names := sortedKeys(c.Decoders)
	for _, r := range c.Routes {
		if _, ok := c.Decoders[r.Decoder]; !ok {
			names = append(names, r.Decoder)
		}
	}
	done := map[string]bool{}
	for _, name := range names {
		if done[name] {
			continue
		}
		done[name] = true
		key, kind, opts := "decoders."+name, name, map[string]any(nil)
		if dc, ok := c.Decoders[name]; ok {
			kind, opts = dc.Kind, dc.Options
		}
		if f, err := decoders.Lookup(kind); err == nil {
			if _, err := f(pluginDecoder(opts, key, []string{"kind"}), env(name)); err != nil {
				pluginErrorLines(err, key, ps)
			}
		}
	}
}

// isPluginName reports whether s is a registered decoder or output kind,
// the prefix plugins put on their errors.
func isPluginName(s string) bool {
	if _, err := decoders.Lookup(s); err == nil {
		return true
	}
	_, err := outputs.Lookup(s)
	return err == nil
}

// noResolver stands in for Consul while checking: plugins must not look
// anything up when they are built.
type noResolver struct{}

func (noResolver) Resolve(context.Context, string) ([]string, error) {
	return nil, errors.New("config check does not look services up")
}

// checkKafkaSettings catches the mistakes that would otherwise show up as
// a consumer that hangs or loops on authentication at run time.
func checkKafkaSettings(s map[string]any) []error {
	var errs []error
	for _, k := range sortedKeys(s) {
		if why, ok := managedSettings[k]; ok {
			errs = append(errs, fmt.Errorf("kafka.settings.%s: managed by shovel (%s)", k, why))
		}
	}
	str := func(k string) string {
		if v, ok := s[k]; ok {
			return strings.TrimSpace(fmt.Sprint(v))
		}
		return ""
	}
	mech := str("sasl.mechanism")
	if mech == "" {
		mech = str("sasl.mechanisms")
	}
	switch strings.ToUpper(mech) {
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if str("sasl.username") == "" || str("sasl.password") == "" {
			errs = append(errs, fmt.Errorf("kafka.settings: sasl.mechanism %s needs sasl.username and sasl.password", mech))
		}
		if p := strings.ToUpper(str("security.protocol")); p != "SASL_PLAINTEXT" && p != "SASL_SSL" {
			errs = append(errs, fmt.Errorf("kafka.settings.security.protocol: must be SASL_SSL or SASL_PLAINTEXT when sasl.mechanism is set, got %q", str("security.protocol")))
		}
	}
	return errs
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port must be a number from 1 to 65535", addr)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
