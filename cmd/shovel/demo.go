package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/outputs"
	"github.com/shovel-metrics/shovel/router"
	"github.com/shovel-metrics/shovel/router/kafka"
	routerkpi "github.com/shovel-metrics/shovel/router/kpi"
	"github.com/shovel-metrics/shovel/router/memory"
	"github.com/shovel-metrics/shovel/router/metric"
)

func init() { subcommands = append(subcommands, newDemoCmd) }

// demoOptions are the flags of `shovel demo`.
type demoOptions struct {
	interval time.Duration
	prefix   string
	deviceID string
	carbon   config.Overrides // Host, Port, LinePort only
	logLevel string
	config   string // a config of the user's own, instead of the built-in one
}

// demoShutdown bounds the flush at the end of a demo: its samples are
// throw-away, and without Carbon the Carbon side could never finish.
const demoShutdown = 2 * time.Second

// demoStdoutGroup is the consumer group of the demo's stdout side.
const demoStdoutGroup = "shovel-demo-stdout"

func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline in one process, with an embedded Kafka, until SIGINT/SIGTERM",
		Long: `demo needs nothing installed. It starts an embedded Kafka-protocol broker
(franz-go's kfake, on a loopback port), publishes this process's own KPIs to
it every --interval (as shovel publish does), and routes them with the
built-in default config: into Carbon's pickle receiver at localhost:2004,
with the plaintext receiver at localhost:2003 as fallback. Every sample is
also printed on standard output as a Carbon plaintext line, as the file
output writes it, so you can watch them arrive.

Without a carbon-cache running, demo says so once and keeps going: the
stdout side reads Kafka as a consumer group of its own, so it never waits
for Carbon, while the Carbon side holds its samples back (in Kafka) until a
carbon-cache starts. -H, -p and --line-port point it at another Carbon.

With --config FILE, demo runs your config instead, its brokers pointed at
the embedded one: every topic it names (the literal names of kafka.topics,
and dead_letter.topic) is created there, the Carbon side runs your routes
into your outputs (dead letters included), and the stdout side runs the same
routes with every output printing to stdout. Put your own messages in with
shovel send -K <the embedded broker's address>, printed at start.

The embedded broker keeps everything in memory and exists only inside
shovel demo and the tests; no config file can ask for it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tuneGC(memory.DefaultLimit)
			if !cmd.Flags().Changed("line-port") {
				o.carbon.LinePort = 0
			}
			return runDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.interval, "interval", 2*time.Second, "time between published KPI messages")
	f.StringVar(&o.prefix, "prefix", routerkpi.DefaultPrefix(), "object path the slice KPIs are published under")
	f.StringVar(&o.deviceID, "device-id", "", "device id of the VOLTHA KPI events (default: the host name)")
	f.StringVarP(&o.carbon.Host, "host", "H", "", "Carbon host (default: localhost, from the built-in config)")
	f.IntVarP(&o.carbon.Port, "port", "p", 0, "Carbon pickle port (2004 in the built-in config)")
	f.IntVar(&o.carbon.LinePort, "line-port", 2003, "Carbon plaintext (fallback) port")
	// warn by default: the samples on stdout are the show, and librdkafka
	// has a lot to say at info.
	f.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	f.StringVar(&o.config, "config", "", "run this config's routes and outputs against the embedded broker (default: the built-in config)")
	return cmd
}

func runDemo(ctx context.Context, o demoOptions, stdout, stderr io.Writer) error {
	// Both formats, as a site that runs old and new VOLTHA components
	// would have them: JSON slices on voltha.kpis, protobuf events (this
	// host as an OLT) on voltha.events.
	pub := publishOptions{brokers: "embedded", format: routerkpi.FormatSlice, topic: routerkpi.DefaultTopic,
		interval: o.interval, prefix: o.prefix, logLevel: o.logLevel}
	events := pub
	events.format, events.topic, events.deviceID = routerkpi.FormatVolthaEvent, routerkpi.VolthaTopic, o.deviceID
	for _, p := range []publishOptions{pub, events} {
		if err := p.check(); err != nil {
			return usageError{err}
		}
	}
	log := cliLogger(o.logLevel, stderr)

	// The built-in default config, or the user's, pointed at the embedded broker.
	overrides := config.Overrides{Host: o.carbon.Host, Port: o.carbon.Port, LinePort: o.carbon.LinePort}
	cfg, err := config.Check(o.config, overrides)
	if err != nil {
		return usageError{err}
	}
	topics := []string{pub.topic, events.topic}
	if o.config == "" {
		cfg.Kafka.Topics = []string{pub.topic, events.topic} // what the demo publishes, whatever SHOVEL_KAFKA_TOPICS says
	} else {
		for _, t := range append(append([]string(nil), cfg.Kafka.Topics...), cfg.DeadLetter.Topic) {
			if t != "" && !strings.HasPrefix(t, "^") && !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	cfg.ShutdownTimeout = demoShutdown

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		return fmt.Errorf("demo: start the embedded broker: %w", err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	cfg.Kafka.Brokers = []string{broker}

	carbonAddrs := carbonAddresses(cfg)
	carbonUp := anyListening(ctx, carbonAddrs)
	carbonLog := log
	if !carbonUp {
		// Carbon's own "cannot connect" lines would repeat every minute;
		// the demo says it once, below, in words a first-time user can act on.
		carbonLog = slog.New(quietHandler{Handler: log.Handler(), drop: carbonAbsentMessages})
	}
	var buildOpts []config.BuildOption
	var dead *kafka.DeadLetterWriter
	if cfg.DeadLetter.Topic != "" {
		largest, err := cfg.LargestMessage()
		if err != nil {
			return usageError{err}
		}
		dead, err = kafka.NewDeadLetter(ctx, kafka.DeadLetterConfig{Brokers: broker, Topic: cfg.DeadLetter.Topic,
			MaxRecordBytes: kafka.DeadLetterRecordLimit(largest)}, log.With("component", "dead-letter"))
		if err != nil {
			return fmt.Errorf("dead_letter.topic: %w", err)
		}
		defer func() { _ = dead.Close(demoShutdown) }()
		buildOpts = append(buildOpts, config.WithDeadLetter(dead))
	}
	carbonSide, err := config.Build(cfg, carbonLog, buildOpts...)
	if err != nil {
		return usageError{err}
	}
	var stdoutSide *router.Router
	if o.config == "" {
		stdoutSide, err = stdoutRouter(stdout, log)
	} else {
		// The file's routes, every output printing to stdout.
		lw := &lockedWriter{w: stdout}
		var b *config.Built
		b, err = config.Build(cfg, log, config.WithOutputs(func(name string) metric.Output {
			return outputs.NewStreamOutput(lw, log.With("output", name))
		}))
		if b != nil {
			stdoutSide = b.Router
		}
	}
	if err != nil {
		return err
	}

	fmt.Fprintf(stderr, "shovel demo: embedded Kafka at %s, topics %s; publishing this process's KPIs to %s as %s.* every %s.\n",
		broker, strings.Join(topics, ", "), pub.topic, pub.prefix, pub.interval)
	fmt.Fprintf(stderr, "shovel demo: and on topic %s, this host's network interfaces and process as a VOLTHA OLT's protobuf KPI events (voltha.<host>.NNIStats.*, voltha.<host>.ProcessStats.*).\n",
		events.topic)
	if o.config != "" {
		fmt.Fprintf(stderr, "shovel demo: running %s. Send messages of your own with: shovel send -K %s -t TOPIC FILE\n", o.config, broker)
	}
	fmt.Fprintf(stderr, "shovel demo: samples go to Carbon at %s, and are printed below as Carbon plaintext lines. Ctrl-C stops.\n",
		strings.Join(carbonAddrs, ", falling back to "))
	if !carbonUp {
		fmt.Fprintf(stderr, "shovel demo: no Carbon is listening at %s. The samples still print below; the ones for Carbon wait in Kafka and are delivered when a carbon-cache starts (see the README's Demo section).\n",
			strings.Join(carbonAddrs, " or "))
	}

	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: broker}, log.With("component", "kafka-producer"))
	if err != nil {
		return err
	}
	sides := []struct {
		name   string
		group  string
		router *router.Router
	}{
		{"stdout", demoStdoutGroup, stdoutSide},
		{"carbon", cfg.Kafka.Group, carbonSide.Router},
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		runErrs  []error
		closers  []func() error
		runCtx   context.Context
		stopRuns context.CancelFunc
	)
	runCtx, stopRuns = context.WithCancel(ctx)
	defer stopRuns()
	for _, s := range sides {
		consumer, err := kafka.New(kafka.Config{
			Brokers: broker, Topics: cfg.Kafka.Topics, Group: s.group, Start: "earliest",
		}, log.With("component", "kafka", "side", s.name))
		if err != nil {
			stopRuns()
			wg.Wait()
			errs := []error{err, producer.Close()}
			for _, c := range closers {
				errs = append(errs, c())
			}
			return errors.Join(errs...)
		}
		r := s.router
		r.Start(runCtx)
		wg.Go(func() {
			if err := consumer.Run(runCtx, r.Handle); err != nil {
				mu.Lock()
				runErrs = append(runErrs, err)
				mu.Unlock()
				stopRuns() // a fatal consumer error ends the demo
			}
		})
		closers = append(closers, func() error {
			sctx, cancel := context.WithTimeout(context.Background(), demoShutdown)
			defer cancel()
			closeErr := r.Close(sctx)
			if errors.Is(closeErr, context.DeadlineExceeded) {
				log.Info("left undelivered samples behind at exit", "side", s.name)
				closeErr = nil
			}
			return errors.Join(closeErr, consumer.Close())
		})
	}

	for _, po := range []publishOptions{pub, events} {
		p := po.publisher(producer, log.With("component", "publisher", "format", po.format))
		wg.Go(func() { _ = p.Run(runCtx) }) // Run returns nil when runCtx ends
	}
	<-runCtx.Done()
	wg.Wait()

	errs := append(runErrs, producer.Close())
	for _, c := range closers {
		errs = append(errs, c())
	}
	fmt.Fprintln(stderr, "shovel demo: stopped.")
	return errors.Join(errs...)
}

// lockedWriter lets several outputs print whole batches to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// stdoutRouter routes slice messages and VOLTHA events to a file output on w. It is a router
// of its own, fed by a consumer group of its own, so that it keeps
// printing while the Carbon side waits for Carbon: one router waits, by
// design, when an output of a route cannot take more.
func stdoutRouter(w io.Writer, log *slog.Logger) (*router.Router, error) {
	var routes []router.Route
	for _, r := range []struct{ decoder, typ, topic string }{
		{"voltha-event", "", routerkpi.VolthaTopic},
		{"slice", routerkpi.Type, ""},
	} {
		factory, err := decoders.Lookup(r.decoder)
		if err != nil {
			return nil, err
		}
		dec, err := factory(nil, metric.Env{Name: r.decoder, Logger: log})
		if err != nil {
			return nil, err
		}
		match, err := router.NewMatch(r.typ, r.topic, nil)
		if err != nil {
			return nil, err
		}
		routes = append(routes, router.Route{Name: "demo-stdout-" + r.decoder, Match: match, Decoder: dec, DecoderName: r.decoder, Outputs: []string{"stdout"}})
	}
	return router.New(router.Config{
		Routes: routes,
		Outputs: []router.OutputConfig{{
			Name: "stdout", Output: outputs.NewStreamOutput(w, log.With("output", "stdout")),
			FlushInterval: 50 * time.Millisecond,
		}},
		Logger: log.With("component", "router", "side", "stdout"),
	})
}

// carbonAddresses lists the host:port of the config's Carbon outputs,
// primary first, then its fallback.
func carbonAddresses(cfg *config.Config) []string {
	var out []string
	seen := map[string]bool{}
	var add func(name string)
	add = func(name string) {
		o, ok := cfg.Outputs[name]
		if !ok || seen[name] {
			return
		}
		seen[name] = true
		if a, ok := o.Options["address"].(string); ok && (o.Kind == "carbon-pickle" || o.Kind == "carbon-plaintext") {
			out = append(out, a)
		}
		add(o.Fallback)
	}
	for _, r := range cfg.Routes {
		for _, name := range r.Outputs {
			add(name)
		}
	}
	return out
}

// anyListening reports whether something accepts TCP connections at one
// of addrs.
func anyListening(ctx context.Context, addrs []string) bool {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	for _, a := range addrs {
		if c, err := d.DialContext(ctx, "tcp", a); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

// carbonAbsentMessages are the log lines that repeat while Carbon cannot be
// reached; the demo replaces them with one notice of its own.
var carbonAbsentMessages = map[string]bool{
	"output not reachable yet; will keep trying": true,
	"cannot connect to carbon":                   true,
	"still cannot connect to carbon":             true,
	"output cannot deliver":                      true,
}

// quietHandler drops the records whose message is in drop.
type quietHandler struct {
	slog.Handler
	drop map[string]bool
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.drop[r.Message] {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{Handler: h.Handler.WithAttrs(attrs), drop: h.drop}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{Handler: h.Handler.WithGroup(name), drop: h.drop}
}
