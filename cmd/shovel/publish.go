package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shovel-metrics/shovel/router/kafka"
	// Named so as not to clash with the tests' kpi type in this package.
	routerkpi "github.com/shovel-metrics/shovel/router/kpi"
	"github.com/shovel-metrics/shovel/router/metric"
)

func init() { subcommands = append(subcommands, newPublishCmd) }

// publishOptions are the flags of `shovel publish`.
type publishOptions struct {
	brokers  string
	format   string
	deviceID string
	topic    string
	interval time.Duration
	prefix   string
	logLevel string
}

func newPublishCmd() *cobra.Command {
	var o publishOptions
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish this process's and host's diagnostics as VOLTHA KPIs until SIGINT/SIGTERM",
		Long: `publish sends a slice message every --interval to a Kafka topic, with this
process's goroutines, resident memory, CPU time, open files and GC pauses
under the object path --prefix (default shovel.<hostname>), for example

  {"type":"slice","ts":1480000000,"data":{"shovel.host1":{"deferreds":9,"rss-mb":21.5,...}}}

With --format voltha-event it publishes as a current VOLTHA's openolt
adapter does instead: binary protobuf KPI events (KpiEvent2) to the topic
voltha.events, one per network interface of this host as an NNI port
(title NNIStats, context oltid, devicetype and portlabel nni-<interface>,
the adapter's metric names RxBytes, TxPackets, ...), and one of this
process's measurements (title ProcessStats), all under the device id
--device-id (default the host name); docs/voltha-events.md.

It shows the path a KPI takes end to end (shovel route puts these into
Carbon), and is an example of router/kpi, the Go package other programs use
to publish their own KPIs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return usageError{err}
			}
			log := cliLogger(o.logLevel, cmd.ErrOrStderr())
			producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: o.brokers}, log.With("component", "kafka"))
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("topic") && o.format == routerkpi.FormatVolthaEvent {
				o.topic = routerkpi.VolthaTopic
			}
			p := o.publisher(producer, log)
			log.Info("publishing KPIs", "brokers", o.brokers, "format", o.format, "topic", o.topic, "interval", o.interval)
			runErr := p.Run(cmd.Context())
			closeErr := producer.Close()
			log.Info("stopped publishing")
			return errors.Join(runErr, closeErr)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.brokers, "kafka", "K", "localhost:9092", "Kafka bootstrap servers host:port[,host:port]")
	f.StringVar(&o.format, "format", routerkpi.FormatSlice, "slice (JSON, to voltha.kpis) or voltha-event (protobuf, to voltha.events)")
	f.StringVarP(&o.topic, "topic", "t", routerkpi.DefaultTopic, "Kafka topic (default voltha.events with --format voltha-event)")
	f.StringVar(&o.deviceID, "device-id", "", "--format voltha-event: the device id of the events (default: the host name)")
	f.DurationVar(&o.interval, "interval", routerkpi.DefaultInterval, "time between messages")
	f.StringVar(&o.prefix, "prefix", routerkpi.DefaultPrefix(), "object path the metrics are published under")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// publisher is the KPI publisher o describes, sending through s.
func (o *publishOptions) publisher(s routerkpi.Sender, log *slog.Logger) *routerkpi.Publisher {
	return &routerkpi.Publisher{
		Sender: s, Format: o.format, Topic: o.topic, Object: o.prefix, DeviceID: o.deviceID,
		Interval: o.interval, Source: routerkpi.Process{}, Logger: log,
	}
}

func (o *publishOptions) check() error {
	var errs []error
	if o.format != routerkpi.FormatSlice && o.format != routerkpi.FormatVolthaEvent {
		errs = append(errs, fmt.Errorf("--format: must be %s or %s, got %q", routerkpi.FormatSlice, routerkpi.FormatVolthaEvent, o.format))
	}
	if strings.TrimSpace(o.brokers) == "" {
		errs = append(errs, errors.New("-K/--kafka: must name at least one broker"))
	}
	if strings.HasPrefix(o.brokers, "@") {
		errs = append(errs, errors.New("-K/--kafka: publish takes host:port, not a Consul @name"))
	}
	if strings.TrimSpace(o.topic) == "" || strings.HasPrefix(o.topic, "^") {
		errs = append(errs, fmt.Errorf("-t/--topic: must be a topic name, got %q", o.topic))
	}
	if o.interval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--interval: must be at least 10ms, got %s", o.interval))
	}
	if !metric.ValidPath(o.prefix) {
		errs = append(errs, fmt.Errorf("--prefix: %q is not a metric path (dot-separated, no spaces or empty segments)", o.prefix))
	}
	switch o.logLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level: must be debug, info, warn or error, got %q", o.logLevel))
	}
	return errors.Join(errs...)
}

// cliLogger is the text logger of a command that has no config file;
// level has been checked.
func cliLogger(level string, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}
