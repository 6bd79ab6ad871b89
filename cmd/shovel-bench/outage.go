package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
)

// outageRate is how fast the topic grows while Carbon is away: 20 000
// messages (200 000 samples) a second, most of what shovel drains here.
const outageRate = 20_000

// runOutage shows what shovel does with its memory when Carbon goes away
// while the topic keeps growing: after the preloaded messages have gone
// through, the Carbon listener closes for o.outage while messages keep
// arriving at outageRate; the listener then comes back on the same
// address and every message must arrive. It prints shovel's RSS (VmRSS)
// before, during (every 10 s) and after the outage: the issue asks that
// it stay flat, consumption waiting in Kafka rather than in a queue.
func runOutage(ctx context.Context, o *options, out io.Writer) (bool, error) {
	w := o.work
	preloaded := w.messages
	during := int(o.outage.Seconds() * outageRate)
	w.messages, w.bad = preloaded+during, 0
	w.base = recentBase(w.messages) // every timestamp inside shovel's window
	parts := o.partitions[0]
	fmt.Fprintf(out, "shovel-bench outage: %d messages preloaded, then Carbon away for %v while %d more arrive (%d/s); %d partitions\nmachine: %s\n",
		preloaded, o.outage, during, outageRate, parts, machine())

	const topic = "shovel-bench-outage"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(parts), topic))
	if err != nil {
		return false, fmt.Errorf("kfake: %w", err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	if _, err := produceRange(ctx, broker, topic, parts, &w, 0, preloaded, 0); err != nil {
		return false, err
	}
	rcv, err := newReceiver(&w)
	if err != nil {
		return false, err
	}
	defer func() { rcv.close() }()
	addr := rcv.addr()
	sh, err := startSoloShovel(o, "shovel-bench-outage", broker, topic, addr, out)
	if err != nil {
		return false, err
	}
	defer sh.stop(o)
	pid := sh.cmd.Process.Pid
	rss := func() float64 {
		kib, err := procStatusKiB(pid, "VmRSS:")
		if err != nil {
			return 0
		}
		return float64(kib) / 1024
	}
	waitFor := func(n int64) bool {
		last, lastAt := rcv.total.Load(), time.Now()
		for rcv.complete.Load() < n {
			if cur := rcv.total.Load(); cur != last {
				last, lastAt = cur, time.Now()
			} else if time.Since(lastAt) > o.idle {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}

	if !waitFor(int64(preloaded)) {
		return false, fmt.Errorf("the preloaded messages did not arrive (shovel's log: %s)", sh.log)
	}
	before := rss()
	fmt.Fprintf(out, "preloaded messages delivered; RSS %.1f MiB. Carbon goes away.\n", before)
	rcv.close() // the listener and every connection

	produced := make(chan error, 1)
	go func() {
		_, err := produceRange(ctx, broker, topic, parts, &w, preloaded, w.messages, outageRate)
		produced <- err
	}()
	start, peak := time.Now(), before
	for next := 10 * time.Second; time.Since(start) < o.outage; time.Sleep(time.Second) {
		peak = max(peak, rss())
		if el := time.Since(start); el >= next {
			fmt.Fprintf(out, "  %3.0f s into the outage: RSS %.1f MiB (peak so far %.1f)\n", el.Seconds(), rss(), peak)
			next += 10 * time.Second
		}
	}
	if err := <-produced; err != nil {
		return false, err
	}
	rcv.firstAfter.Store(0)
	if err := rcv.listenAgain(addr); err != nil {
		return false, err
	}
	fmt.Fprintf(out, "Carbon is back after %v with %d messages waiting in Kafka.\n", time.Since(start).Round(time.Second), during)
	t0 := time.Now()
	ok := waitFor(int64(w.messages))
	v := rcv.verdict()
	// The first frame after the listener's return: until then shovel was
	// waiting out its reconnect backoff (reconnect_min..reconnect_max).
	reconnect := time.Duration(0)
	if first := rcv.firstAfter.Load(); first > 0 {
		reconnect = time.Duration(first - t0.UnixNano())
	}
	fmt.Fprintf(out, "RSS: %.1f MiB before, peak %.1f MiB during the outage, %.1f MiB after catching up\n", before, peak, rss())
	fmt.Fprintf(out, "catching up: first sample %.1f s after Carbon came back (reconnect backoff), all %d waiting messages %.1f s after that\n",
		reconnect.Seconds(), during, time.Since(t0).Seconds()-reconnect.Seconds())
	fmt.Fprintf(out, "verify: %d of %d messages complete; %d missing, %d partial, %d duplicated; %d wrong samples\n",
		rcv.complete.Load(), w.messages, v.missing, v.partial, v.duplicated, v.wrong)
	for _, e := range v.examples {
		fmt.Fprintln(out, "  ", e)
	}
	return ok && v.ok(), nil
}

// listenAgain reopens the listener on addr after close: Carbon restarting.
func (r *receiver) listenAgain(addr string) error {
	var err error
	for range 50 { // the port may take a moment to be free again
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			r.srv = carbontest.Serve(ln, r.serve)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("receiver: listen again on %s: %w", addr, err)
}

// procStatusKiB reads a "Vm...:" line of /proc/<pid>/status, in KiB.
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}
