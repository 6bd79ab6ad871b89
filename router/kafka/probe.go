package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Cluster is what the brokers said about themselves: the brokers they
// advertise and the topics they hold.
type Cluster struct {
	Brokers []string
	Topics  []string
}

// Probe asks the brokers for the cluster's metadata, with the security
// settings (security.*, sasl.*, ssl.*) of the consumer's settings, without
// joining a group, consuming or producing anything: `shovel config check
// --connect`. It waits at most timeout.
func Probe(ctx context.Context, brokers string, settings map[string]any, timeout time.Duration, log *slog.Logger) (Cluster, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cm := ck.ConfigMap{"go.logs.channel.enable": true}
	for k, v := range InheritSecurity(settings) {
		cm[k] = v
	}
	cm["bootstrap.servers"] = brokers
	// A producer, for its metadata request and its log channel: it
	// connects, and produces nothing.
	a, err := ck.NewProducer(&cm)
	if err != nil {
		return Cluster{}, fmt.Errorf("kafka: client for %s: %w", brokers, err)
	}
	logsDone := make(chan struct{})
	logs := a.Logs()
	go forwardLogs(logs, log, logsDone)
	defer func() {
		a.Close()
		if logs != nil {
			<-logsDone
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	md, err := a.GetMetadata(nil, true, max(int(timeout/time.Millisecond), 1))
	if err != nil {
		return Cluster{}, fmt.Errorf("kafka: metadata from %s: %w", brokers, err)
	}
	var c Cluster
	for _, b := range md.Brokers {
		c.Brokers = append(c.Brokers, fmt.Sprintf("%s:%d", b.Host, b.Port))
	}
	for name, t := range md.Topics {
		if t.Error.Code() == ck.ErrNoError {
			c.Topics = append(c.Topics, name)
		}
	}
	sort.Strings(c.Brokers)
	sort.Strings(c.Topics)
	return c, nil
}
