package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/router/consul"
	"github.com/shovel-metrics/shovel/router/kafka"
	"github.com/shovel-metrics/shovel/router/metric"
)

// errNotTried marks an output checkConnect leaves alone.
var errNotTried = errors.New("not tried")

// connectTimeout bounds each service `config check --connect` tries.
const connectTimeout = 10 * time.Second

// checkConnect tries what cfg names, without consuming or writing
// anything: Consul for an "@name" of kafka.brokers, the brokers' metadata,
// every topic of kafka.topics and the dead-letter topic, and every output's
// destination. It prints one line per check and returns an error naming
// how many failed.
func checkConnect(ctx context.Context, cfg *config.Config, w io.Writer, log *slog.Logger) error {
	total, failed := 0, 0
	report := func(what string, err error, okFormat string, args ...any) {
		total++
		if err != nil {
			failed++
			fmt.Fprintf(w, "FAIL %s: %v\n", what, err)
			return
		}
		fmt.Fprintf(w, "ok   %s: %s\n", what, fmt.Sprintf(okFormat, args...))
	}

	brokers := strings.Join(cfg.Kafka.Brokers, ",")
	if name, ok := consul.IsService(brokers); ok {
		lctx, cancel := context.WithTimeout(ctx, connectTimeout)
		addrs, err := lookupBrokers(lctx, cfg, name, log)
		cancel()
		report("kafka.brokers "+brokers, err, "Consul (%s) lists %s", cfg.Consul.Address, strings.Join(addrs, ", "))
		brokers = strings.Join(addrs, ",")
	}
	if brokers != "" {
		cl, err := kafka.Probe(ctx, brokers, cfg.Kafka.Settings, connectTimeout, log)
		report("kafka.brokers", err, "%s answered; the cluster advertises %s", brokers, strings.Join(cl.Brokers, ", "))
		if err == nil {
			has := map[string]bool{}
			for _, t := range cl.Topics {
				has[t] = true
			}
			for i, t := range cfg.Kafka.Topics {
				key := fmt.Sprintf("kafka.topics[%d] %s", i, t)
				if strings.HasPrefix(t, "^") {
					re := regexp.MustCompile(t) // validated already
					var n []string
					for _, name := range cl.Topics {
						if re.MatchString(name) {
							n = append(n, name)
						}
					}
					var err error
					if len(n) == 0 {
						err = fmt.Errorf("matches no topic yet (shovel subscribes to the pattern and takes topics as they appear)")
					}
					report(key, err, "matches %s", strings.Join(n, ", "))
					continue
				}
				var err error
				if !has[t] {
					err = fmt.Errorf("no such topic")
				}
				report(key, err, "exists")
			}
			if dl := cfg.DeadLetter.Topic; dl != "" {
				var err error
				if !has[dl] {
					err = fmt.Errorf("no such topic (create it: shovel route refuses to start without it)")
				}
				report("dead_letter.topic "+dl, err, "exists")
			}
		}
	}

	// The outputs, together: each may take its connect timeout.
	names := make([]string, 0, len(cfg.Outputs))
	for name := range cfg.Outputs {
		names = append(names, name)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { errs[i] = tryOutput(ctx, cfg, name, log) })
	}
	wg.Wait()
	for i, name := range names {
		if errs[i] == errNotTried {
			fmt.Fprintf(w, "--   outputs.%s: not tried (%s outputs are opened only by shovel route)\n", name, cfg.Outputs[name].Kind)
			continue
		}
		report("outputs."+name, errs[i], "connected")
	}
	if failed > 0 {
		return fmt.Errorf("config check --connect: %d of %d checks failed", failed, total)
	}
	return nil
}

// tryOutput connects the output and waits until it says it is connected,
// for at most connectTimeout.
func tryOutput(ctx context.Context, cfg *config.Config, name string, log *slog.Logger) error {
	out, err := cfg.NewOutput(name, log)
	if err != nil {
		return err
	}
	defer out.Close()
	c, ok := out.(metric.Connectivity)
	if !ok {
		// An output that cannot tell whether it is connected (a file) is
		// not tried: connecting it would create or truncate its file.
		return errNotTried
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	err = out.Connect(ctx)
	// Connect starts a dial and returns; once that dial has failed, it
	// returns the failure (while the output backs off).
	for !c.Connected() {
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not connected after %s", connectTimeout)
		case <-time.After(20 * time.Millisecond):
		}
		err = out.Connect(ctx)
	}
	return nil
}
