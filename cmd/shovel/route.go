package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/router"
	"github.com/shovel-metrics/shovel/router/consul"
	"github.com/shovel-metrics/shovel/router/kafka"
	"github.com/shovel-metrics/shovel/router/memory"
	"github.com/shovel-metrics/shovel/router/status"
)

func newRouteCmd() *cobra.Command {
	var (
		cfgPath    string
		httpAddr   string
		cpuProfile string
		memProfile string
		o          config.Overrides
	)
	cmd := &cobra.Command{
		Use:   "route",
		Short: "Consume Kafka and write samples to Carbon until SIGINT/SIGTERM",
		Long: `route runs the router. With no --config it runs the built-in default
(configs/shovel.yaml): a current VOLTHA's protobuf KPI events from the topic
voltha.events and the JSON slice KPIs of voltha.kpis, on localhost:9092, into
Carbon pickle at localhost:2004, with Carbon plaintext at localhost:2003 as
fallback. The flags override the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if !f.Changed("line-port") {
				o.LinePort = 0 // the flag's default documents Carbon's port; only an explicit value overrides the file
			}
			if f.Changed("http") {
				o.HTTP = &httpAddr
			}
			// Check reports every problem of the file, the flags' included, at once.
			load := func() (*config.Config, error) { return config.Check(cfgPath, o) }
			cfg, err := loadUntil(cmd.Context(), load)
			if err != nil {
				if cmd.Context().Err() != nil {
					return err // a signal, not a bad config
				}
				return usageError{err}
			}
			tuneGC(int64(cfg.Limits.Memory))
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			if memProfile != "" {
				defer writeAllocProfile(memProfile, cmd.ErrOrStderr())
			}
			err = route(cmd.Context(), cfg, load, cmd.ErrOrStderr())
			var ue usageError
			if err != nil && cfg.Log.Format == "json" && !errors.As(err, &ue) {
				// The last line of a JSON log is JSON too.
				newLogger(cfg.Log, cmd.ErrOrStderr()).Error("shovel stopped with an error", "err", err.Error())
				return loggedError{err}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config file (default: the built-in configs/shovel.yaml)")
	f.StringVarP(&o.Kafka, "kafka", "K", "", `Kafka bootstrap servers, or "@name" to look the service up in Consul`)
	f.StringVarP(&o.Consul, "consul", "c", "", "Consul address for @name lookups")
	f.StringVarP(&o.Topic, "topic", "t", "", "Kafka topic (replaces kafka.topics)")
	f.StringVarP(&o.Group, "group", "g", "", "Kafka consumer group")
	f.StringVarP(&o.Host, "host", "H", "", "Carbon host for the carbon-pickle and carbon-plaintext outputs")
	f.IntVarP(&o.Port, "port", "p", 0, "Carbon pickle port (2004 in the default config)")
	f.IntVar(&o.LinePort, "line-port", 2003, "Carbon plaintext (fallback) port")
	f.StringVar(&httpAddr, "http", config.DefaultHTTPAddress, `address of /metrics, /healthz and /readyz ("" disables them)`)
	f.StringVar(&o.LogLevel, "log-level", "", "debug, info, warn or error (overrides log.level)")
	f.StringVar(&o.LogFormat, "log-format", "", "text or json (overrides log.format)")
	// For make bench and for profiling a deployment's workload: the profile
	// covers the whole run and is written at a clean exit.
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	f.StringVar(&memProfile, "memprofile", "", "write an allocation profile of the whole run to this file at exit")
	_ = f.MarkHidden("cpuprofile")
	_ = f.MarkHidden("memprofile")
	return cmd
}

// defaultGCPercent is shovel's GOGC when the environment sets none. Its
// live heap is small (messages in flight, queued batches) while it
// allocates about a kilobyte per message, so Go's default of 100 collects
// hundreds of times a second; make bench measured 20-30% less CPU per
// sample at 300, for about 15 MiB more peak RSS.
const defaultGCPercent = 300

// tuneGC applies defaultGCPercent unless GOGC or GOMEMLIMIT says otherwise,
// and a soft memory limit derived from the memory budget unless GOMEMLIMIT
// is set: at GOGC 300 a live heap as large as the budget (Carbon away, the
// queues full) would otherwise grow to four times it before a collection.
func tuneGC(budget int64) {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memory.SoftLimit(budget))
	}
}

func writeAllocProfile(path string, errw io.Writer) {
	runtime.GC() // the profile counts allocations up to the last collection
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(errw, "memprofile:", err)
	}
}

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		}
	}, nil
}

func newLogger(cfg config.Log, w interface{ Write([]byte) (int, error) }) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Level)) // validated already
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Format == "json" {
		// Durations as "1.5s", as the config writes them, not nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				return slog.String(a.Key, a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// route builds everything from cfg, runs until ctx ends, then shuts down
// in the order that loses nothing: stop fetching, flush the outputs, commit.
// On SIGHUP it calls load again and swaps in the new routes, decoders and
// outputs (see reload).
func route(ctx context.Context, cfg *config.Config, load func() (*config.Config, error), logw interface{ Write([]byte) (int, error) }) error {
	log := newLogger(cfg.Log, logw)
	brokers := strings.Join(cfg.Kafka.Brokers, ",")
	if name, ok := consul.IsService(brokers); ok {
		// librdkafka learns the rest of the cluster from these, so a
		// lookup at start-up is enough.
		addrs, err := lookupBrokers(ctx, cfg, name, log)
		if err != nil {
			return fmt.Errorf("kafka.brokers %q: %w", brokers, err)
		}
		log.Info("kafka brokers from consul", "service", name, "brokers", addrs)
		brokers = strings.Join(addrs, ",")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stats, err := router.NewStats(reg) // shared by every generation: counters survive reloads
	if err != nil {
		return err
	}
	reloads, err := registerProcessMetrics(reg)
	if err != nil {
		return err
	}
	// One budget for the consumer and every router generation.
	budget := memory.New(int64(cfg.Limits.Memory))
	if err := budget.Register(reg); err != nil {
		return err
	}
	opts := []config.BuildOption{config.WithStats(stats), config.WithBudget(budget)}
	var dead *kafka.DeadLetterWriter
	if cfg.DeadLetter.Topic != "" {
		settings := kafka.InheritSecurity(cfg.Kafka.Settings)
		for k, v := range cfg.DeadLetter.Settings {
			settings[k] = v
		}
		// Every message a decoder could read must fit in a dead letter.
		largest, err := cfg.LargestMessage()
		if err != nil {
			return usageError{err}
		}
		dead, err = kafka.NewDeadLetter(ctx, kafka.DeadLetterConfig{Brokers: brokers, Topic: cfg.DeadLetter.Topic, Settings: settings,
			MaxRecordBytes: kafka.DeadLetterRecordLimit(largest), UnreadyAfter: cfg.DeadLetter.UnreadyAfter, Registerer: reg}, log.With("component", "dead-letter"))
		if err != nil {
			return fmt.Errorf("dead_letter.topic: %w", err)
		}
		opts = append(opts, config.WithDeadLetter(dead))
	}
	built, err := config.Build(cfg, log, opts...)
	if err != nil {
		if dead != nil {
			_ = dead.Close(0)
		}
		return usageError{err}
	}
	consumer, err := kafka.New(kafka.Config{
		Brokers: brokers, Topics: cfg.Kafka.Topics, Group: cfg.Kafka.Group,
		Start: cfg.Kafka.Start, Settings: cfg.Kafka.Settings, Registerer: reg, Budget: budget,
		InstanceID: cfg.Kafka.InstanceID,
	}, log.With("component", "kafka"))
	if err != nil {
		if dead != nil {
			_ = dead.Close(0)
		}
		return err
	}
	r := built.Router
	sw := router.NewSwitch(r)
	if cfg.HTTP.Address != "" {
		checks := func() map[string]string {
			out := map[string]string{"kafka": consumer.Readiness()}
			if dead != nil {
				out["dead_letter"] = dead.Readiness()
			}
			for name, why := range sw.Current().Readiness() {
				out["output "+name] = why
			}
			return out
		}
		srv, err := status.Listen(cfg.HTTP.Address, status.Handler(reg, checks), log)
		if err != nil {
			_ = consumer.Close()
			return fmt.Errorf("http.address: %w", err)
		}
		log.Info("status endpoints", "address", "http://"+srv.Addr(), "paths", "/metrics /healthz /readyz")
		defer srv.Close(context.Background())
	}
	r.Start(ctx)
	log.Info("shovel routing", "version", version, "brokers", brokers, "topics", cfg.Kafka.Topics, "group", cfg.Kafka.Group)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// The reloader and the self-metrics reporter use the routers: they must
	// be done before the routers close. They stop when Run does, also when
	// Run stops on its own (a fatal Kafka error) rather than on a signal.
	hctx, stopHelpers := context.WithCancel(ctx)
	var helpers sync.WaitGroup
	helpers.Go(func() {
		for {
			select {
			case <-hctx.Done():
				return
			case <-hup:
				reload(ctx, cfg, load, sw, opts, log, reloads)
			}
		}
	})
	if sm := cfg.SelfMetrics; sm.Interval > 0 {
		helpers.Go(func() { reportSelf(hctx, reg, sw, sm, cfg.SelfMetricsPrefix(), log) })
	}

	runErr := consumer.Run(ctx, sw.Handle)
	if runErr != nil {
		log.Error("kafka consumer stopped", "err", runErr)
	}
	stopHelpers()
	helpers.Wait()
	log.Info("shutting down: flushing outputs", "deadline", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	closeErr := sw.Close(sctx)
	var deadErr error
	if dead != nil {
		// Dead letters acknowledge their source messages when delivered:
		// flush them before the final commit.
		deadErr = dead.Close(time.Until(deadlineOf(sctx)))
	}
	commitErr := consumer.Close()
	snap := stats.Snapshot()
	var skipped uint64
	for _, n := range snap.Skips {
		skipped += n
	}
	log.Info("stopped", "messages", snap.Messages, "samples_in", snap.SamplesIn, "samples_out", snap.SamplesOut,
		"skipped", skipped, "rejected", snap.RejectReasons())
	return errors.Join(runErr, closeErr, deadErr, commitErr)
}

// loadUntil runs load and returns its result, or an error as soon as ctx
// ends: SIGINT and SIGTERM stop shovel while it loads a configuration,
// whatever a file it reads does (the config and secret files are read
// bounded and must be regular files, but a path on a hung network mount
// still blocks). The abandoned load finishes, or not, in the background.
func loadUntil(ctx context.Context, load func() (*config.Config, error)) (*config.Config, error) {
	type result struct {
		cfg *config.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := load()
		done <- result{cfg, err}
	}()
	select {
	case r := <-done:
		return r.cfg, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("config: loading interrupted: %w", context.Cause(ctx))
	}
}

// reload builds the routes, decoders and outputs of a fresh load() and
// swaps them in. A config that does not load, validate and build is
// refused with a log line, and the running one goes on. Sections that only
// a restart can change (kafka, consul, http, dead_letter, log) keep their
// running values, with a warning when they differ.
func reload(ctx context.Context, running *config.Config, load func() (*config.Config, error),
	sw *router.Switch, opts []config.BuildOption, log *slog.Logger, m reloadMetrics) {
	m.last.SetToCurrentTime()
	next, err := loadUntil(ctx, load)
	if err != nil {
		m.failed()
		log.Error("config reload refused; the running config stays", "err", err)
		return
	}
	for section, same := range map[string]bool{
		"kafka":        reflect.DeepEqual(next.Kafka, running.Kafka),
		"consul":       reflect.DeepEqual(next.Consul, running.Consul),
		"http":         next.HTTP == running.HTTP,
		"dead_letter":  reflect.DeepEqual(next.DeadLetter, running.DeadLetter),
		"log":          next.Log == running.Log,
		"self_metrics": reflect.DeepEqual(next.SelfMetrics, running.SelfMetrics),
	} {
		if !same {
			log.Warn("config reload: this section changes only on restart", "section", section)
		}
	}
	next.Kafka, next.Consul, next.HTTP, next.DeadLetter, next.Log, next.SelfMetrics =
		running.Kafka, running.Consul, running.HTTP, running.DeadLetter, running.Log, running.SelfMetrics
	built, err := config.Build(next, log, opts...)
	if err != nil {
		m.failed()
		log.Error("config reload refused; the running config stays", "err", err)
		return
	}
	built.Router.Start(ctx)
	sw.Swap(built.Router)
	m.succeeded()
	log.Info("config reloaded", "routes", len(next.Routes), "outputs", len(next.Outputs))
}

// reloadMetrics count SIGHUP reloads.
type reloadMetrics struct {
	results *prometheus.CounterVec // by result
	last    prometheus.Gauge       // when the last reload was tried
	ok      prometheus.Gauge       // whether it succeeded
}

func (m reloadMetrics) failed() {
	m.results.WithLabelValues("failure").Inc()
	m.ok.Set(0)
}

func (m reloadMetrics) succeeded() {
	m.results.WithLabelValues("success").Inc()
	m.ok.Set(1)
}

// registerProcessMetrics registers shovel_build_info and the reload
// metrics with reg.
func registerProcessMetrics(reg prometheus.Registerer) (reloadMetrics, error) {
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shovel_build_info",
		Help: "Always 1, labelled with the version, commit and Go version shovel was built with."},
		[]string{"version", "commit", "goversion"})
	info.WithLabelValues(version, commitID(), runtime.Version()).Set(1)
	m := reloadMetrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_config_reloads_total",
			Help: "Configuration reloads (SIGHUP), by result: success or failure (the running config stays)."}, []string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shovel_config_last_reload_timestamp_seconds",
			Help: "When the last reload was tried, in Unix seconds; 0 before the first."}),
		ok: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shovel_config_last_reload_success",
			Help: "1 if the last reload succeeded (or none was tried), 0 if it was refused."}),
	}
	m.results.WithLabelValues("success")
	m.results.WithLabelValues("failure")
	m.ok.Set(1)
	for _, c := range []prometheus.Collector{info, m.results, m.last, m.ok} {
		if err := reg.Register(c); err != nil {
			return reloadMetrics{}, err
		}
	}
	return m, nil
}

// reportSelf sends shovel's own metrics through its outputs every interval.
func reportSelf(ctx context.Context, reg prometheus.Gatherer, sw *router.Switch, sm config.SelfMetrics,
	prefix string, log *slog.Logger) {
	t := time.NewTicker(sm.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			fams, err := reg.Gather()
			if err != nil {
				log.Warn("self-metrics: gather", "err", err)
				continue
			}
			if err := sw.Current().Inject(sm.Outputs, status.Samples(fams, prefix, now, sm.Runtime)); err != nil {
				log.Debug("self-metrics skipped", "err", err)
			}
		}
	}
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// lookupBrokers resolves kafka.brokers "@name" through Consul.
func lookupBrokers(ctx context.Context, cfg *config.Config, service string, log *slog.Logger) ([]string, error) {
	r, err := consul.New(cfg.Consul, log.With("component", "consul"))
	if err != nil {
		return nil, err
	}
	return r.Resolve(ctx, service)
}
