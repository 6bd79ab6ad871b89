package router

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shovel-metrics/shovel/router/memory"
	"github.com/shovel-metrics/shovel/router/metric"
)

// delivery is one route's samples of a message on their way to the
// route's outputs. Sinks share it read-only; each acknowledges it to the
// message's group once its output has taken the samples.
type delivery struct {
	samples []metric.Sample
	group   *ackGroup
	// cost is what the samples are charged to the budget, and what each
	// sink's queue holds for them until its output has taken them.
	cost int64
}

func (d *delivery) ack() { d.group.ack() }

// guardedOutput serialises Write: an output may be some routes' primary and
// another output's fallback at the same time, and Output.Write is not
// required to be safe for concurrent use.
type guardedOutput struct {
	name string
	mu   sync.Mutex
	out  metric.Output
}

func (g *guardedOutput) write(ctx context.Context, samples []metric.Sample) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.out.Write(ctx, samples)
}

// sink owns the batching and delivery policy of one output.
type sink struct {
	name       string
	primary    *guardedOutput
	fallbacks  []*guardedOutput // the fallback chain, in order
	in         chan *delivery
	gate       *memory.Gate // the output's queue bytes, shared across generations
	batchSize  int
	flushEvery time.Duration
	stats      *outputStats
	log        *slog.Logger

	closeOnce sync.Once
	degraded  bool // the primary failed its last write; logged on change only

	// A reload hands what this sink holds to its successor, the next
	// generation's sink of the same output: successor is set before
	// handoff is closed.
	successor *sink
	handoff   chan struct{}
	// adopted are deliveries handed over by a predecessor, waiting to be
	// batched; adoptReady is signalled when there are some.
	adoptMu    sync.Mutex
	adopted    []*delivery
	passed     bool // passOn took adopted: what comes later goes to the successor
	adoptedN   atomic.Int64
	adoptReady chan struct{}

	mu        sync.Mutex
	state     sinkState
	lastError string
}

// sinkState is what readiness reports for an output.
type sinkState int

const (
	stateOK       sinkState = iota // the last batch went to the output itself
	stateFallback                  // the last batch went to a fallback
	stateBlocked                   // the last batch could not be delivered anywhere yet
)

// readiness is "" when the sink can deliver, else the reason it cannot.
func (s *sink) readiness() string {
	s.mu.Lock()
	st, lastErr := s.state, s.lastError
	s.mu.Unlock()
	if st == stateBlocked {
		return "cannot deliver: " + lastErr
	}
	if connected(s.primary) {
		return ""
	}
	for _, fb := range s.fallbacks {
		if connected(fb) {
			return ""
		}
	}
	return "not connected"
}

// connected asks an output that knows; one that cannot tell counts as
// connected until a write says otherwise.
func connected(g *guardedOutput) bool {
	c, ok := g.out.(metric.Connectivity)
	return !ok || c.Connected()
}

func (s *sink) setState(st sinkState, errText string) {
	s.mu.Lock()
	s.state, s.lastError = st, errText
	s.mu.Unlock()
}

func newSink(oc OutputConfig, fallbacks []string, outs map[string]*guardedOutput, stats *Stats, gate *memory.Gate, log *slog.Logger) (*sink, error) {
	gate.SetLimit(oc.QueueBytes)
	s := &sink{
		name:       oc.Name,
		gate:       gate,
		handoff:    make(chan struct{}),
		adoptReady: make(chan struct{}, 1),
		primary:    outs[oc.Name],
		batchSize:  orDefault(oc.BatchSize, DefaultBatchSize),
		flushEvery: orDefault(oc.FlushInterval, DefaultFlushInterval),
		in:         make(chan *delivery, orDefault(oc.QueueSize, DefaultQueueSize)),
		log:        log,
	}
	for _, fb := range fallbacks {
		s.fallbacks = append(s.fallbacks, outs[fb])
	}
	var err error
	s.stats, err = stats.forOutput(oc.Name, oc.Output, fallbacks, gate)
	return s, err
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (s *sink) enqueue(ctx context.Context, aborted <-chan struct{}, d *delivery) error {
	if err := s.gate.Acquire(ctx, aborted, d.cost); err != nil {
		if errors.Is(err, memory.ErrAborted) {
			return ErrAborted
		}
		return err
	}
	select {
	case s.in <- d:
		return nil
	default:
	}
	select {
	case s.in <- d:
		return nil
	case <-ctx.Done():
		s.gate.Release(d.cost)
		return ctx.Err()
	case <-aborted:
		s.gate.Release(d.cost)
		return ErrAborted
	}
}

// close tells the sink that no more deliveries will come; run flushes what
// it holds and returns.
func (s *sink) close() { s.closeOnce.Do(func() { close(s.in) }) }

// run batches deliveries until the batch is full or its oldest sample has
// waited flushEvery, then writes it. While a write cannot succeed, run
// stops reading its queue, which fills and stops the consumer: samples
// wait in Kafka, not in memory.
func (s *sink) run(ctx context.Context) {
	defer s.gate.Track(func() int { return len(s.in) + int(s.adoptedN.Load()) })()
	var (
		batch []metric.Sample
		acks  []*delivery
		timer = time.NewTimer(time.Hour)
		armed bool
	)
	timer.Stop()
	flush := func() bool {
		if armed {
			timer.Stop()
			armed = false
		}
		if len(batch) == 0 {
			return true
		}
		if !s.deliver(ctx, batch) {
			if s.handedOff() {
				s.passOn(acks)
			}
			return false
		}
		var taken int64
		for _, d := range acks {
			taken += d.cost
			d.ack()
		}
		s.gate.Release(taken)
		clear(acks) // let the delivered samples be collected
		acks = acks[:0]
		// And their paths. A message of 400 000 samples is one delivery,
		// appended whole: the batch it grew is dropped, not kept (13 MB,
		// per output, for good).
		if cap(batch) > 2*s.batchSize {
			batch = nil
		} else {
			clear(batch)
			batch = batch[:0]
		}
		return true
	}
	// absorb batches what a predecessor handed over.
	absorb := func() {
		s.adoptMu.Lock()
		ds := s.adopted
		s.adopted = nil
		s.adoptedN.Store(0)
		s.adoptMu.Unlock()
		for _, d := range ds {
			batch = append(batch, d.samples...)
			acks = append(acks, d)
		}
	}
	for {
		select {
		case d, ok := <-s.in:
			if !ok {
				absorb()
				flush()
				return
			}
			if len(batch) == 0 && !armed {
				timer.Reset(s.flushEvery)
				armed = true
			}
			batch = append(batch, d.samples...)
			acks = append(acks, d)
			// Take what else is queued without going back to the
			// three-way select: at full rate that select, once per
			// message, was a measurable share of the sink's time.
		drain:
			for len(batch) < s.batchSize {
				select {
				case d, ok := <-s.in:
					if !ok {
						absorb()
						flush()
						return
					}
					batch = append(batch, d.samples...)
					acks = append(acks, d)
				default:
					break drain
				}
			}
			if len(batch) >= s.batchSize && !flush() {
				return
			}
		case <-s.adoptReady:
			if len(batch) == 0 && !armed {
				timer.Reset(s.flushEvery)
				armed = true
			}
			absorb()
			if len(batch) >= s.batchSize && !flush() {
				return
			}
		case <-s.handoff:
			s.passOn(acks)
			return
		case <-timer.C:
			armed = false
			if !flush() {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (s *sink) handedOff() bool {
	select {
	case <-s.handoff:
		return true
	default:
		return false
	}
}

// handOver makes next take what s holds and everything still queued to
// it: a retiring generation then keeps neither its queue nor a retry loop
// of its own, and its output's queue bytes stay within the one cap that
// both share (the same gate).
func (s *sink) handOver(next *sink) {
	s.successor = next
	close(s.handoff)
}

// passOn gives held, the adopted deliveries not yet batched, and all that
// comes through the queue until it closes, to the successor. Their budget
// and gate charges go with them.
func (s *sink) passOn(held []*delivery) {
	s.adoptMu.Lock()
	held = append(held, s.adopted...)
	s.adopted = nil
	s.passed = true
	s.adoptedN.Store(0)
	s.adoptMu.Unlock()
	s.successor.adopt(held)
	for d := range s.in { // closed by the retiring router's Close, which follows the handover
		s.successor.adopt([]*delivery{d})
	}
}

func (s *sink) adopt(ds []*delivery) {
	if len(ds) == 0 {
		return
	}
	s.adoptMu.Lock()
	if s.passed {
		// Retired too, before its predecessor got round to handing over
		// (reloads in quick succession): on to the newest.
		s.adoptMu.Unlock()
		s.successor.adopt(ds)
		return
	}
	s.adopted = append(s.adopted, ds...)
	s.adoptedN.Store(int64(len(s.adopted)))
	s.adoptMu.Unlock()
	select {
	case s.adoptReady <- struct{}{}:
	default:
	}
}

// deliver writes batch to the primary, or down the fallback chain, retrying
// with a capped backoff until one takes it. It returns false only when ctx
// ends first; the batch is then left unacknowledged.
func (s *sink) deliver(ctx context.Context, batch []metric.Sample) bool {
	backoff := minRetryWait
	start := time.Now()
	for {
		err := s.primary.write(ctx, batch)
		if err == nil {
			if s.degraded {
				s.degraded = false
				s.log.Info("output delivering again")
			}
			s.setState(stateOK, "")
			s.stats.written(len(batch), -1, time.Since(start))
			return true
		}
		s.stats.writeFailed()
		if !s.degraded {
			s.degraded = true
			s.log.Warn("output cannot deliver", "err", err, "fallbacks", len(s.fallbacks))
			if len(s.fallbacks) > 0 {
				s.stats.fallbackActivated()
			}
		}
		for i, fb := range s.fallbacks {
			if ferr := fb.write(ctx, batch); ferr == nil {
				s.setState(stateFallback, err.Error())
				s.stats.written(len(batch), i, time.Since(start))
				return true
			}
			s.stats.writeFailed()
		}
		s.setState(stateBlocked, err.Error())
		select {
		case <-ctx.Done():
			return false
		case <-s.handoff:
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxRetryWait)
	}
}

// The sink's own retry pace; dialling has its own backoff inside each output,
// so this only sets how often a cheap "still not connected?" is asked.
const (
	minRetryWait = 20 * time.Millisecond
	maxRetryWait = time.Second
)
