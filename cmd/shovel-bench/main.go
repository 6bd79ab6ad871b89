// Command shovel-bench measures shovel end to end: it preloads a kfake
// broker with slice messages, runs `shovel route` as a separate process
// against it and a Carbon pickle listener that checks every sample, and
// times a bare confluent-kafka-go consumer on the same topic as the floor
// shovel is compared to. It exits 1 only when samples are missing or wrong,
// never because of speed. See BENCHMARKS.md.
//
//	shovel-bench [flags]              run the benchmark (make bench, make bench-smoke)
//	shovel-bench bare-consumer ...    the floor, run as a child by the benchmark
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shovel-metrics/shovel/router/kafka/kafkabroker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "bare-consumer" {
		if err := bareConsumer(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		return
	}
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "shovel-bench:", err)
		os.Exit(2)
	}
	run := runBench
	switch {
	case opts.trickle > 0:
		run = runTrickle
	case opts.outage > 0:
		run = runOutage
	}
	ok, err := run(ctx, opts, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shovel-bench:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

type options struct {
	shovel     string
	work       workload
	partitions []int
	instances  int
	workers    int
	settings   kvFlag
	idle       time.Duration
	skipBare   bool
	inProcess  bool
	cpuProfile string
	// childProfile is the CPU profile of the shovel child (shovel route --cpuprofile).
	childProfile string
	keepLogs     bool
	trickle      int
	outage       time.Duration
	// broker is "kfake" (in-process) or "kafka" (Apache Kafka from its
	// jars, router/kafka/kafkabroker).
	broker string
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("shovel-bench", flag.ContinueOnError)
	fs.StringVar(&o.shovel, "shovel", "bin/shovel", "the shovel binary to run (make build)")
	fs.IntVar(&o.work.messages, "messages", 1_000_000, "messages to preload")
	fs.IntVar(&o.work.samples, "samples", 10, "samples per message")
	fs.IntVar(&o.work.objects, "objects", 3, "objects per message (the samples are spread over them)")
	fs.Float64Var(&o.work.bad, "bad", 0, "share of messages no route takes (0..1): half invalid JSON, half an unknown type")
	parts := fs.String("partitions", "1", "partitions of the topic; a comma-separated list runs a sweep (1,4,8)")
	fs.IntVar(&o.instances, "instances", 1, "shovel processes in one consumer group, sharing the partitions")
	fs.IntVar(&o.workers, "workers", 0, "shovel's kafka.workers (0: its default, one per CPU)")
	fs.Var(&o.settings, "X", "librdkafka property key=value for shovel (kafka.settings) and the bare consumer; repeatable")
	fs.DurationVar(&o.idle, "idle", 60*time.Second, "give a run up after this long without a new sample")
	fs.BoolVar(&o.skipBare, "skip-bare", false, "do not time the bare consumer")
	fs.IntVar(&o.trickle, "trickle", 0, "instead of the throughput run, publish this many messages at 10/s and report each one's latency to Carbon")
	fs.DurationVar(&o.outage, "outage", 0, "instead of the throughput run: after -messages have gone through, take Carbon away for this long while the topic grows, and report shovel's RSS")
	fs.BoolVar(&o.inProcess, "inprocess", false, "run the router inside the bench (for profiling) instead of as a child process")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of an in-process run to this file (implies -inprocess); the router's goroutines carry the label part=shovel")
	fs.StringVar(&o.childProfile, "child-cpuprofile", "", "write CPU and allocation (FILE.allocs) profiles of the shovel child process (.pN is added in a sweep); unlike -cpuprofile it has librdkafka's cgo calls and the runtime exactly as in production")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep the temporary config and shovel's log")
	fs.StringVar(&o.broker, "broker", "kfake", `the broker: "kfake" (in-process) or "kafka" (Apache Kafka `+kafkabroker.Version+
		`, one node, from the jars router/kafka/kafkabroker/fetch.sh fetches; needs Java)`)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, p := range strings.Split(*parts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("-partitions: %q is not a number from 1 to 64", p)
		}
		o.partitions = append(o.partitions, n)
	}
	switch {
	case o.work.messages < 1 || o.work.messages > 20_000_000:
		return nil, fmt.Errorf("-messages must be from 1 to 20000000")
	case o.work.samples < 1 || o.work.samples > 10_000:
		return nil, fmt.Errorf("-samples must be from 1 to 10000")
	case o.work.objects < 1:
		return nil, fmt.Errorf("-objects must be positive")
	case o.work.bad < 0 || o.work.bad >= 1:
		return nil, fmt.Errorf("-bad must be in [0, 1)")
	case o.instances < 1 || o.instances > 16:
		return nil, fmt.Errorf("-instances must be from 1 to 16")
	}
	o.work.base = recentBase(o.work.messages)
	if o.cpuProfile != "" {
		o.inProcess = true
	}
	if o.childProfile != "" && (o.inProcess || o.instances != 1) {
		return nil, fmt.Errorf("-child-cpuprofile profiles one child process: drop -inprocess, -cpuprofile and -instances")
	}
	if o.outage > 0 && (o.trickle > 0 || o.inProcess || o.instances != 1 || len(o.partitions) != 1) {
		return nil, fmt.Errorf("-outage runs one shovel child on one topic: drop -trickle, -inprocess, -cpuprofile, -instances and partition lists")
	}
	switch {
	case o.broker != "kfake" && o.broker != "kafka":
		return nil, fmt.Errorf(`-broker: %q: use "kfake" or "kafka"`, o.broker)
	case o.broker == "kafka" && (o.trickle > 0 || o.outage > 0):
		return nil, fmt.Errorf("-broker kafka runs the throughput run only: drop -trickle and -outage")
	case o.broker == "kafka":
		if why := kafkabroker.Available(); why != "" {
			return nil, fmt.Errorf("-broker kafka: %s", why)
		}
	}
	if o.inProcess && o.instances != 1 {
		return nil, fmt.Errorf("-inprocess runs one router; drop -instances")
	}
	if !o.inProcess {
		if _, err := os.Stat(o.shovel); err != nil {
			return nil, fmt.Errorf("-shovel: %w (run make build)", err)
		}
	}
	return o, nil
}

// kvFlag collects repeated -X key=value flags.
type kvFlag []struct{ k, v string }

func (f *kvFlag) String() string {
	var s []string
	for _, kv := range *f {
		s = append(s, kv.k+"="+kv.v)
	}
	return strings.Join(s, ",")
}

func (f *kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	*f = append(*f, struct{ k, v string }{k, v})
	return nil
}

func numCPU() int { return runtime.NumCPU() }
