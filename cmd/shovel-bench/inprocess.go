package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/router/kafka"
	"github.com/shovel-metrics/shovel/router/memory"

	// Register every decoder and output, as cmd/shovel does.
	_ "github.com/shovel-metrics/shovel/decoders"
	_ "github.com/shovel-metrics/shovel/outputs"
)

// runInProcess runs the router the way `shovel route` does (cmd/shovel's
// route), but inside the bench, so that runtime/pprof can profile it. Its
// goroutines carry the pprof label part=shovel: `go tool pprof
// -tagfocus=part=shovel` leaves kfake and the listener out. librdkafka's own
// threads are C threads, which the Go profiler does not sample.
func runInProcess(ctx context.Context, o *options, cfgPath string, rcv *receiver, good int) (*result, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	budget := memory.New(int64(cfg.Limits.Memory))
	built, err := config.Build(cfg, log, config.WithBudget(budget))
	if err != nil {
		return nil, err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, _ := procCPU(os.Getpid())
	start := time.Now().UnixNano()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	var consumer *kafka.Consumer
	pprof.Do(rctx, pprof.Labels("part", "shovel"), func(lctx context.Context) {
		consumer, err = kafka.New(kafka.Config{
			Brokers: strings.Join(cfg.Kafka.Brokers, ","), Topics: cfg.Kafka.Topics, Group: cfg.Kafka.Group,
			Start: cfg.Kafka.Start, Settings: cfg.Kafka.Settings, Budget: budget,
		}, log.With("component", "kafka"))
		if err != nil {
			return
		}
		built.Router.Start(lctx)
		go func() { runErr <- consumer.Run(lctx, built.Router.Handle) }()
	})
	if err != nil {
		return nil, err
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case err := <-runErr:
			runErr <- err
			close(stopped)
		case <-rctx.Done():
		}
	}()
	reason := waitDone(ctx, rcv, good, o.idle, stopped)
	res := &result{name: "shovel in-process", startNs: start, firstNs: rcv.first.Load(), lastNs: rcv.last.Load(), note: reason}
	if c, err := procCPU(os.Getpid()); err == nil {
		res.cpu = c - cpu0
	}
	res.hwmKiB, _ = procHWM(os.Getpid())

	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer scancel()
	closeErr := built.Router.Close(sctx)
	commitErr := consumer.Close()
	if err := errors.Join(<-runErr, closeErr, commitErr); err != nil {
		res.note = strings.TrimSpace(res.note + fmt.Sprintf("; shutdown: %v", err))
	}
	return res, nil
}
