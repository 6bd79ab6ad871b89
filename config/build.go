package config

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/outputs"
	"github.com/shovel-metrics/shovel/router"
	"github.com/shovel-metrics/shovel/router/consul"
	"github.com/shovel-metrics/shovel/router/memory"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Built is a validated configuration turned into working parts. Building
// does no network I/O: outputs connect when the router starts, and "@name"
// addresses are looked up in Consul only when first needed.
type Built struct {
	Router   *router.Router
	Kafka    Kafka
	Resolver metric.Resolver
}

// BuildOption adjusts Build.
type BuildOption func(*buildOptions)

type buildOptions struct {
	outputs    func(name string) metric.Output
	now        func() time.Time
	deadLetter router.DeadLetter
	stats      *router.Stats
	budget     *memory.Budget
}

// WithBudget makes the router charge what it holds to budget, which the
// Kafka consumer and every router generation share (see memory.New).
// Without it the router gets a budget of its own of c.Limits.Memory.
func WithBudget(budget *memory.Budget) BuildOption {
	return func(o *buildOptions) { o.budget = budget }
}

// WithStats makes the router count into stats (see router.NewStats), so
// that counters and their metrics carry on across configuration reloads.
func WithStats(stats *router.Stats) BuildOption {
	return func(o *buildOptions) { o.stats = stats }
}

// WithOutputs builds every output with newOutput instead of its kind's
// factory, the router's keys (fallback, batching, queue) kept: `shovel demo
// --config` runs a file's routes with every output printing to stdout.
func WithOutputs(newOutput func(name string) metric.Output) BuildOption {
	return func(o *buildOptions) { o.outputs = newOutput }
}

// WithClock judges the time window by now instead of the wall clock
// (`shovel decode --now`).
func WithClock(now func() time.Time) BuildOption {
	return func(o *buildOptions) { o.now = now }
}

// WithDeadLetter gives the router its dead-letter writer (for
// c.DeadLetter.Topic). It is passed in because it needs a Kafka producer,
// which lives with the consumer in the cgo package router/kafka.
func WithDeadLetter(d router.DeadLetter) BuildOption {
	return func(o *buildOptions) { o.deadLetter = d }
}

// Build validates c and instantiates its decoders, outputs and router.
func Build(c *Config, log *slog.Logger, opts ...BuildOption) (*Built, error) {
	var bo buildOptions
	for _, o := range opts {
		o(&bo)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	resolver := &lazyResolver{cfg: c.Consul, log: log.With("component", "consul")}

	decs := map[string]metric.Decoder{}
	decoder := func(name string) (metric.Decoder, error) {
		if d, ok := decs[name]; ok {
			return d, nil
		}
		kind, opts, key := name, map[string]any(nil), "decoders."+name
		if dc, ok := c.Decoders[name]; ok {
			kind, opts = dc.Kind, dc.Options
		}
		f, err := decoders.Lookup(kind)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		d, err := f(pluginDecoder(opts, key, []string{"kind"}), metric.Env{Name: name, Logger: log.With("decoder", name), Resolver: resolver})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		decs[name] = d
		return d, nil
	}

	if bo.budget == nil {
		bo.budget = memory.New(int64(c.Limits.Memory))
	}
	rc := router.Config{
		Logger: log.With("component", "router"),
		Window: router.TimeWindow{
			MaxAge: c.Timestamps.MaxAge, MaxFuture: c.Timestamps.MaxFuture,
			Clamp: c.Timestamps.OutOfWindow == "clamp", Now: bo.now,
		},
		DeadLetter: bo.deadLetter,
		Stats:      bo.stats,
		Output:     c.Limits.OutputLimits(),
		Budget:     bo.budget,
		Workers:    c.Kafka.Workers,
	}
	for _, name := range sortedKeys(c.Outputs) {
		o := c.Outputs[name]
		key := "outputs." + name
		f, err := outputs.Lookup(o.Kind)
		if err != nil {
			return nil, fmt.Errorf("%s.kind: %w", key, err)
		}
		out, err := f(pluginDecoder(o.Options, key, routerOutputKeys), metric.Env{Name: name, Logger: log.With("output", name), Resolver: resolver})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if bo.outputs != nil {
			out = bo.outputs(name)
		}
		rc.Outputs = append(rc.Outputs, router.OutputConfig{
			Name: name, Output: out, Fallback: o.Fallback,
			BatchSize: o.BatchSize, FlushInterval: o.FlushInterval, QueueSize: o.QueueSize,
		})
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		d, err := decoder(r.Decoder)
		if err != nil {
			return nil, fmt.Errorf("%s.decoder: %w", key, err)
		}
		m, err := router.NewMatch(r.Match.Type, r.Match.Topic, r.Match.Headers)
		if err != nil {
			return nil, fmt.Errorf("%s.match.%w", key, err)
		}
		name := r.Name
		if name == "" {
			name = key
		}
		rc.Routes = append(rc.Routes, router.Route{
			Name: name, Match: m, Decoder: d, DecoderName: r.Decoder,
			Rules: r.routerRules(), Outputs: r.Outputs, Continue: r.Stop != nil && !*r.Stop,
		})
	}
	rt, err := router.New(rc)
	if err != nil {
		return nil, err
	}
	return &Built{Router: rt, Kafka: c.Kafka, Resolver: resolver}, nil
}

// NewOutput builds the output named name as Build does, with its own
// Consul resolver, for tools that use an output without the router
// (`shovel config check --connect`). It does no I/O.
func (c *Config) NewOutput(name string, log *slog.Logger) (metric.Output, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o, ok := c.Outputs[name]
	key := "outputs." + name
	if !ok {
		return nil, fmt.Errorf("%s: no such output", key)
	}
	f, err := outputs.Lookup(o.Kind)
	if err != nil {
		return nil, fmt.Errorf("%s.kind: %w", key, err)
	}
	resolver := &lazyResolver{cfg: c.Consul, log: log.With("component", "consul")}
	out, err := f(pluginDecoder(o.Options, key, routerOutputKeys), metric.Env{Name: name, Logger: log.With("output", name), Resolver: resolver})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return out, nil
}

// lazyResolver creates the Consul client on first use, so that a config
// with no "@name" address never needs Consul or its token file.
type lazyResolver struct {
	cfg  consul.Config
	log  *slog.Logger
	once sync.Once
	r    *consul.Resolver
	err  error
}

func (l *lazyResolver) Resolve(ctx context.Context, service string) ([]string, error) {
	l.once.Do(func() { l.r, l.err = consul.New(l.cfg, l.log) })
	if l.err != nil {
		return nil, l.err
	}
	return l.r.Resolve(ctx, service)
}
