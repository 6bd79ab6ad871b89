package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/router/consul"
	"github.com/shovel-metrics/shovel/router/kafka"
	"github.com/shovel-metrics/shovel/router/status"
)

func newRouteCmd() *cobra.Command {
	var (
		cfgPath  string
		httpAddr string
		o        config.Overrides
	)
	cmd := &cobra.Command{
		Use:   "route",
		Short: "Consume Kafka and write samples to Carbon until SIGINT/SIGTERM",
		Long: `route runs the router. With no --config it runs the built-in default
(configs/shovel.yaml): slice messages from the topic voltha.kpis on
localhost:9092 into Carbon pickle at localhost:2004, with Carbon plaintext at
localhost:2003 as fallback. The flags override the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if !f.Changed("line-port") {
				o.LinePort = 0 // the flag's default documents Carbon's port; only an explicit value overrides the file
			}
			if f.Changed("http") {
				o.HTTP = &httpAddr
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return usageError{err}
			}
			if err := cfg.Apply(o); err != nil {
				return usageError{err}
			}
			return route(cmd.Context(), cfg, cmd.ErrOrStderr())
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
	return cmd
}

func newLogger(cfg config.Log, w interface{ Write([]byte) (int, error) }) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Level)) // validated already
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// route builds everything from cfg, runs until ctx ends, then shuts down
// in the order that loses nothing: stop fetching, flush the outputs, commit.
func route(ctx context.Context, cfg *config.Config, logw interface{ Write([]byte) (int, error) }) error {
	log := newLogger(cfg.Log, logw)
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
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
	opts := []config.BuildOption{config.WithRegisterer(reg)}
	var dead *kafka.DeadLetterWriter
	if cfg.DeadLetter.Topic != "" {
		settings := kafka.InheritSecurity(cfg.Kafka.Settings)
		for k, v := range cfg.DeadLetter.Settings {
			settings[k] = v
		}
		var err error
		dead, err = kafka.NewDeadLetter(kafka.DeadLetterConfig{Brokers: brokers, Topic: cfg.DeadLetter.Topic, Settings: settings},
			log.With("component", "dead-letter"))
		if err != nil {
			return err
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
		Start: cfg.Kafka.Start, Settings: cfg.Kafka.Settings, Registerer: reg,
	}, log.With("component", "kafka"))
	if err != nil {
		return err
	}
	r := built.Router
	if cfg.HTTP.Address != "" {
		checks := status.Checks{"kafka": consumer.Readiness}
		for name := range r.Readiness() {
			checks["output "+name] = func() string { return r.Readiness()[name] }
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

	runErr := consumer.Run(ctx, r.Handle)
	log.Info("shutting down: flushing outputs", "deadline", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	closeErr := r.Close(sctx)
	var deadErr error
	if dead != nil {
		// Dead letters acknowledge their source messages when delivered:
		// flush them before the final commit.
		deadErr = dead.Close(time.Until(deadlineOf(sctx)))
	}
	commitErr := consumer.Close()
	snap := r.Stats().Snapshot()
	log.Info("stopped", "messages", snap.Messages, "samples_in", snap.SamplesIn, "samples_out", snap.SamplesOut,
		"rejected", snap.RejectReasons())
	return errors.Join(runErr, closeErr, deadErr, commitErr)
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
