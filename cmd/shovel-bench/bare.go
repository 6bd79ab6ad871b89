package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/shovel-metrics/shovel/router/kafka"
)

// bareResult is what the bare-consumer child prints on stdout, one JSON line.
type bareResult struct {
	Messages int64   `json:"messages"`
	Bytes    int64   `json:"bytes"`
	StartNs  int64   `json:"start_ns"` // consumer created
	FirstNs  int64   `json:"first_ns"` // first message polled
	LastNs   int64   `json:"last_ns"`  // last message polled
	CPU      float64 `json:"cpu_s"`    // user+system at the last message
	HWMKiB   int64   `json:"hwm_kib"`
}

// shovelConsumerDefaults are the librdkafka properties router/kafka.New
// starts from, so that the floor the bench measures is the same client
// configured the same way, doing nothing else.
func shovelConsumerDefaults() ck.ConfigMap {
	cm := kafka.Defaults()
	cm["auto.offset.reset"] = "earliest"
	cm["enable.auto.offset.store"] = false
	return cm
}

// bareConsumer is the "bare-consumer" subcommand: read the topic with
// confluent-kafka-go's Poll loop until expect messages have come, and
// report. It is run as a child process so that its CPU and memory are its own.
func bareConsumer(args []string) error {
	fs := flag.NewFlagSet("bare-consumer", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap servers")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "shovel-bench-bare", "consumer group")
	expect := fs.Int64("expect", 0, "messages to read")
	idle := fs.Duration("idle", 60*time.Second, "give up after this long without a message")
	var settings kvFlag
	fs.Var(&settings, "X", "librdkafka property key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cm := shovelConsumerDefaults()
	for _, kv := range settings {
		cm[kv.k] = kv.v
	}
	cm["bootstrap.servers"] = *brokers
	cm["group.id"] = *group
	res := bareResult{StartNs: time.Now().UnixNano()}
	c, err := ck.NewConsumer(&cm)
	if err != nil {
		return fmt.Errorf("bare-consumer: %w", err)
	}
	go func() {
		for range c.Logs() { // shovel forwards these to slog; here they are dropped
		}
	}()
	if err := c.SubscribeTopics([]string{*topic}, nil); err != nil {
		return fmt.Errorf("bare-consumer: subscribe: %w", err)
	}
	lastProgress := time.Now()
	for res.Messages < *expect && time.Since(lastProgress) < *idle {
		switch e := c.Poll(100).(type) {
		case *ck.Message:
			if e.TopicPartition.Error != nil {
				continue
			}
			if res.Messages == 0 {
				res.FirstNs = time.Now().UnixNano()
			}
			res.Messages++
			res.Bytes += int64(len(e.Value))
			lastProgress = time.Now()
		case ck.Error:
			if e.IsFatal() {
				return fmt.Errorf("bare-consumer: %w", e)
			}
		}
	}
	res.LastNs = time.Now().UnixNano()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		res.CPU = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
	}
	res.HWMKiB, _ = procHWM(os.Getpid())
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select { // leaving the group is not part of the measurement
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return nil
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }
