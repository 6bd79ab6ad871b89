package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// trickleRate is the light traffic: ten messages a second.
const trickleRate = 10

// runTrickle measures how long a sample takes to reach Carbon when traffic
// is light, where batching must not hold samples back: shovel runs as a
// child on its defaults (flush_interval 200 ms); after one warm-up message
// has gone through, messages are published at trickleRate per second, and
// each one's latency is from just before it is produced to the moment its
// last sample arrives at the Carbon listener.
func runTrickle(ctx context.Context, o *options, out io.Writer) (bool, error) {
	w := o.work
	w.messages, w.bad = o.trickle+1, 0
	fmt.Fprintf(out, "shovel-bench trickle: %d messages × %d samples at %d/s\nmachine: %s\n",
		o.trickle, w.samples, trickleRate, machine())

	const topic = "shovel-bench-trickle"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		return false, fmt.Errorf("kfake: %w", err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	rcv, err := newReceiver(&w)
	if err != nil {
		return false, err
	}
	defer rcv.close()
	rcv.doneAt = make([]atomic.Int64, w.messages)
	sh, err := startSoloShovel(o, "shovel-bench-trickle", broker, topic, rcv.addr(), out)
	if err != nil {
		return false, err
	}
	defer sh.stop(o)

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		return false, err
	}
	defer cl.Close()
	produce := func(i int) error {
		return cl.ProduceSync(ctx, &kgo.Record{Value: w.message(i, nil)}).FirstErr()
	}
	waitFor := func(n int64, limit time.Duration) bool {
		for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if rcv.complete.Load() >= n {
				return true
			}
		}
		return false
	}
	// Warm up: the group is joined and the connections are up.
	if err := produce(0); err != nil {
		return false, err
	}
	if !waitFor(1, 60*time.Second) {
		return false, fmt.Errorf("the warm-up message did not arrive within 60 s")
	}
	sent := make([]int64, w.messages)
	tick := time.NewTicker(time.Second / trickleRate)
	defer tick.Stop()
	for i := 1; i < w.messages; i++ {
		<-tick.C
		sent[i] = time.Now().UnixNano()
		if err := produce(i); err != nil {
			return false, err
		}
	}
	ok := waitFor(int64(w.messages), 30*time.Second)
	var lat []time.Duration
	for i := 1; i < w.messages; i++ {
		if d := rcv.doneAt[i].Load(); d > 0 {
			lat = append(lat, time.Duration(d-sent[i]))
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(100 * time.Microsecond)
	}
	fmt.Fprintf(out, "latency to Carbon over %d messages: p50 %v, p90 %v, p99 %v, max %v (flush_interval 200ms)\n",
		len(lat), pct(0.5), pct(0.9), pct(0.99), pct(1))
	if !ok {
		fmt.Fprintf(out, "missing: %d of %d messages never completed\n", int64(w.messages)-rcv.complete.Load(), w.messages)
	}
	return ok, nil
}
