package router

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shovel-metrics/shovel/router/internal/ratelimit"
	"github.com/shovel-metrics/shovel/router/memory"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Stats counts what the router does, twice over: plain atomic counters for
// Snapshot (tests, the shutdown log line) and, when a Prometheus registerer
// is configured, the same events as shovel_* metrics. Each event is counted
// at one place, through a method here.
type Stats struct {
	messages    atomic.Uint64
	samplesIn   atomic.Uint64
	samplesOut  atomic.Uint64
	batches     atomic.Uint64
	writeFails  atomic.Uint64
	fallbacks   atomic.Uint64
	deadLetters atomic.Uint64
	deadSkipped atomic.Uint64

	mu      sync.Mutex
	rejects map[RejectKey]uint64
	skips   map[SkipKey]uint64
	// tagRepairs counts tags repaired or dropped; Sample is always true.
	tagRepairs map[RejectKey]uint64

	prom *promMetrics // nil without a registerer
	reg  prometheus.Registerer

	// logLimit paces the routers' rejection log lines. It lives here
	// because Stats is what every generation shares (NewStats once, then
	// WithStats): a reload must not reset it and let a flood through again.
	logLimit *ratelimit.Limiter

	funcsMu sync.Mutex
	funcs   map[string]*atomic.Pointer[func() float64] // per metric and output, swapped on reload
}

// RejectKey labels a rejection counter.
type RejectKey struct {
	Decoder string
	Reason  string
	// Sample is true for a single dropped sample, false for a whole message.
	Sample bool
}

// SkipKey labels a skip counter.
type SkipKey struct {
	Decoder string
	Reason  string
}

type promMetrics struct {
	messages    prometheus.Counter
	decoded     *prometheus.CounterVec
	rejectedMsg *prometheus.CounterVec
	rejectedSmp *prometheus.CounterVec
	routeMsgs   *prometheus.CounterVec
	routeSmps   *prometheus.CounterVec
	ruleDropped *prometheus.CounterVec
	skipped     *prometheus.CounterVec
	tagRepairs  *prometheus.CounterVec
	deadLetters prometheus.Counter
	deadSkipped *prometheus.CounterVec
	written     *prometheus.CounterVec
	failures    *prometheus.CounterVec
	activations *prometheus.CounterVec
	batchSize   *prometheus.HistogramVec
	writeTime   *prometheus.HistogramVec
}

// NewStats creates the counters and registers their metrics with reg (nil
// for none). One Stats outlives configuration reloads, so counters keep
// counting across them: pass it to every router generation in Config.Stats.
func NewStats(reg prometheus.Registerer) (*Stats, error) {
	s := &Stats{rejects: map[RejectKey]uint64{}, skips: map[SkipKey]uint64{}, tagRepairs: map[RejectKey]uint64{}, funcs: map[string]*atomic.Pointer[func() float64]{},
		logLimit: ratelimit.New(10 * time.Second)}
	if reg == nil {
		return s, nil
	}
	p := &promMetrics{
		messages: prometheus.NewCounter(prometheus.CounterOpts{Name: "shovel_messages_total",
			Help: "Kafka messages handled by the router."}),
		decoded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_samples_decoded_total",
			Help: "Samples decoded and accepted for delivery, by decoder."}, []string{"decoder"}),
		rejectedMsg: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_rejected_messages_total",
			Help: "Messages rejected whole, by decoder (empty: no route took it) and reason."},
			[]string{"decoder", "reason"}),
		rejectedSmp: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_rejected_samples_total",
			Help: "Samples dropped from messages whose other samples went on, by decoder and reason."},
			[]string{"decoder", "reason"}),
		routeMsgs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_route_messages_total",
			Help: "Messages a route took (decoded, rejected or skipped), by route."}, []string{"route"}),
		routeSmps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_route_samples_total",
			Help: "Samples a route handed to its outputs, by route."}, []string{"route"}),
		ruleDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_rule_dropped_samples_total",
			Help: "Samples a route's keep and drop rules left out, by route."}, []string{"route"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_skipped_total",
			Help: "Messages a decoder passed over as not for it (such as VOLTHA device events on the KPI topic), by decoder and reason."},
			[]string{"decoder", "reason"}),
		tagRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_tags_repaired_total",
			Help: "Graphite tags repaired or dropped (the sample kept), by decoder and reason."},
			[]string{"decoder", "reason"}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "shovel_dead_letters_total",
			Help: "Messages handed to the dead-letter writer (see shovel_dead_letters_delivered_total)."}),
		deadSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_dead_letters_skipped_total",
			Help: "Rejected messages not dead-lettered, and acknowledged, by reason (already_dead_lettered: it came from a dead-letter topic)."},
			[]string{"reason"}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_output_samples_written_total",
			Help: "Samples written, by output and by the output that took them (itself or a fallback)."},
			[]string{"output", "via"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_output_write_failures_total",
			Help: "Failed write attempts (each is retried), by output."}, []string{"output"}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shovel_output_fallback_activations_total",
			Help: "Times an output started handing its batches to its fallback."}, []string{"output"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "shovel_output_batch_samples",
			Help:    "Samples per successful write.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9)}, []string{"output"}),
		writeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "shovel_output_write_seconds",
			Help:    "Time to deliver one batch, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"output"}),
	}
	for _, c := range []prometheus.Collector{p.messages, p.decoded, p.rejectedMsg, p.rejectedSmp, p.routeMsgs, p.routeSmps, p.ruleDropped, p.skipped, p.tagRepairs, p.deadLetters, p.deadSkipped, p.written,
		p.failures, p.activations, p.batchSize, p.writeTime} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	s.prom, s.reg = p, reg
	return s, nil
}

func (s *Stats) message() {
	s.messages.Add(1)
	if s.prom != nil {
		s.prom.messages.Inc()
	}
}

func (s *Stats) deadLetter() {
	s.deadLetters.Add(1)
	if s.prom != nil {
		s.prom.deadLetters.Inc()
	}
}

func (s *Stats) deadLetterSkipped(reason string) {
	s.deadSkipped.Add(1)
	if s.prom != nil {
		s.prom.deadSkipped.WithLabelValues(reason).Inc()
	}
}

func (s *Stats) reject(decoder, reason string, sample bool, n uint64) {
	s.mu.Lock()
	s.rejects[RejectKey{decoder, reason, sample}] += n
	s.mu.Unlock()
	if s.prom != nil {
		c := s.prom.rejectedMsg
		if sample {
			c = s.prom.rejectedSmp
		}
		c.WithLabelValues(decoder, reason).Add(float64(n))
	}
}

func (s *Stats) skip(decoder, reason string, n uint64) {
	s.mu.Lock()
	s.skips[SkipKey{decoder, reason}] += n
	s.mu.Unlock()
	if s.prom != nil {
		s.prom.skipped.WithLabelValues(decoder, reason).Add(float64(n))
	}
}

func (s *Stats) tagRepair(decoder, reason string, n uint64) {
	s.mu.Lock()
	s.tagRepairs[RejectKey{decoder, reason, true}] += n
	s.mu.Unlock()
	if s.prom != nil {
		s.prom.tagRepairs.WithLabelValues(decoder, reason).Add(float64(n))
	}
}

// routeCounter returns a route's counters once, so that the hot path does
// no label lookup per message.
func (s *Stats) routeCounter(route string) func(samples, ruleDropped int) {
	if s.prom == nil {
		return func(int, int) {}
	}
	msgs := s.prom.routeMsgs.WithLabelValues(route)
	smps := s.prom.routeSmps.WithLabelValues(route)
	dropped := s.prom.ruleDropped.WithLabelValues(route)
	return func(samples, ruleDropped int) {
		msgs.Inc()
		smps.Add(float64(samples))
		if ruleDropped > 0 {
			dropped.Add(float64(ruleDropped))
		}
	}
}

// decodedCounter returns the per-decoder counter once, so that the hot
// path does no label lookup per message.
func (s *Stats) decodedCounter(decoder string) func(n int) {
	if s.prom == nil {
		return func(n int) { s.samplesIn.Add(uint64(n)) }
	}
	c := s.prom.decoded.WithLabelValues(decoder)
	return func(n int) {
		s.samplesIn.Add(uint64(n))
		c.Add(float64(n))
	}
}

// outputStats is one sink's view of the counters.
type outputStats struct {
	s           *Stats
	primary     prometheus.Counter
	viaFallback []prometheus.Counter // parallel to the sink's fallbacks
	failures    prometheus.Counter
	activations prometheus.Counter
	batchSize   prometheus.Observer
	writeTime   prometheus.Observer
}

// outputFunc registers, once per metric and output name, a gauge or
// counter read from fn at scrape time. A reload points the existing one at
// the new generation's fn.
func (s *Stats) outputFunc(metricName, help, output string, counter bool, fn func() float64) error {
	s.funcsMu.Lock()
	defer s.funcsMu.Unlock()
	key := metricName + "\x00" + output
	cur, ok := s.funcs[key]
	if !ok {
		cur = new(atomic.Pointer[func() float64])
		s.funcs[key] = cur
		read := func() float64 { return (*cur.Load())() }
		opts := prometheus.Opts{Name: metricName, Help: help, ConstLabels: prometheus.Labels{"output": output}}
		var c prometheus.Collector = prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts), read)
		if counter {
			c = prometheus.NewCounterFunc(prometheus.CounterOpts(opts), read)
		}
		if err := s.reg.Register(c); err != nil {
			return err
		}
	}
	cur.Store(&fn)
	return nil
}

func (s *Stats) forOutput(name string, out metric.Output, fallbacks []string, gate *memory.Gate) (*outputStats, error) {
	o := &outputStats{s: s}
	if s.prom == nil {
		return o, nil
	}
	// Read at scrape time, so a blocked output shows its full queue even
	// while nothing is written. The gate is shared by the output's queues
	// in every live generation, retiring ones included.
	if err := s.outputFunc("shovel_output_queue_messages", "Messages waiting for an output, in every live router generation.",
		name, false, func() float64 { return float64(gate.Depth()) }); err != nil {
		return nil, err
	}
	if err := s.outputFunc("shovel_output_queue_bytes", "Bytes of samples waiting for an output, in every live router generation.",
		name, false, func() float64 { return float64(gate.Used()) }); err != nil {
		return nil, err
	}
	if err := s.outputFunc("shovel_output_queue_limit_bytes", "The cap on shovel_output_queue_bytes: a route waits while its output's queue is at it.",
		name, false, func() float64 { return float64(gate.Limit()) }); err != nil {
		return nil, err
	}
	if rc, ok := out.(metric.ReconnectCounter); ok {
		err := s.outputFunc("shovel_output_reconnects_total", "Connections an output made again after losing one.",
			name, true, func() float64 { return float64(rc.Reconnects()) })
		if err != nil {
			return nil, err
		}
	}
	p := s.prom
	o.primary = p.written.WithLabelValues(name, name)
	for _, fb := range fallbacks {
		o.viaFallback = append(o.viaFallback, p.written.WithLabelValues(name, fb))
	}
	o.failures = p.failures.WithLabelValues(name)
	o.activations = p.activations.WithLabelValues(name)
	o.batchSize = p.batchSize.WithLabelValues(name)
	o.writeTime = p.writeTime.WithLabelValues(name)
	return o, nil
}

// written records a delivered batch; fallback is -1 for the primary, else
// the index in the fallback chain.
func (o *outputStats) written(n int, fallback int, took time.Duration) {
	o.s.batches.Add(1)
	o.s.samplesOut.Add(uint64(n))
	if fallback >= 0 {
		o.s.fallbacks.Add(1)
	}
	if o.primary == nil {
		return
	}
	if fallback < 0 {
		o.primary.Add(float64(n))
	} else {
		o.viaFallback[fallback].Add(float64(n))
	}
	o.batchSize.Observe(float64(n))
	o.writeTime.Observe(took.Seconds())
}

func (o *outputStats) writeFailed() {
	o.s.writeFails.Add(1)
	if o.failures != nil {
		o.failures.Inc()
	}
}

func (o *outputStats) fallbackActivated() {
	if o.activations != nil {
		o.activations.Inc()
	}
}

// Snapshot is a point-in-time copy of the counters.
type Snapshot struct {
	Messages    uint64 // messages handled
	SamplesIn   uint64 // samples accepted for delivery
	SamplesOut  uint64 // samples written by an output (primary or fallback)
	Batches     uint64 // successful writes
	WriteFails  uint64 // failed write attempts
	Fallbacks   uint64 // batches written by a fallback output
	DeadLetters uint64 // messages handed to the dead-letter writer
	DeadSkipped uint64 // rejected messages not dead-lettered (they came from a dead-letter topic)
	Rejects     map[RejectKey]uint64
	Skips       map[SkipKey]uint64   // messages decoders passed over as not theirs
	TagRepairs  map[RejectKey]uint64 // tags repaired or dropped, their samples kept
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() Snapshot {
	s.mu.Lock()
	rej := make(map[RejectKey]uint64, len(s.rejects))
	for k, v := range s.rejects {
		rej[k] = v
	}
	skips := make(map[SkipKey]uint64, len(s.skips))
	for k, v := range s.skips {
		skips[k] = v
	}
	tags := make(map[RejectKey]uint64, len(s.tagRepairs))
	for k, v := range s.tagRepairs {
		tags[k] = v
	}
	s.mu.Unlock()
	return Snapshot{
		Messages:    s.messages.Load(),
		SamplesIn:   s.samplesIn.Load(),
		SamplesOut:  s.samplesOut.Load(),
		Batches:     s.batches.Load(),
		WriteFails:  s.writeFails.Load(),
		Fallbacks:   s.fallbacks.Load(),
		DeadLetters: s.deadLetters.Load(),
		DeadSkipped: s.deadSkipped.Load(),
		Rejects:     rej,
		Skips:       skips,
		TagRepairs:  tags,
	}
}

// RejectReasons returns "decoder/reason (messages|samples)=count" for
// every rejection counted, sorted, for the log line at exit.
func (sn Snapshot) RejectReasons() []string {
	var out []string
	for k, n := range sn.Rejects {
		scope := "messages"
		if k.Sample {
			scope = "samples"
		}
		out = append(out, fmt.Sprintf("%s/%s %s=%d", k.Decoder, k.Reason, scope, n))
	}
	sort.Strings(out)
	return out
}
