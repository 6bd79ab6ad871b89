// Package router moves decoded samples from messages to outputs. It matches
// each message to a route, decodes it with the route's decoder, checks every
// sample, and hands the samples to one sink per output. A sink batches
// samples across messages and writes them, falling back to another output
// while its own cannot deliver. A message is acknowledged (its Kafka offset
// may be committed) only when every output it went to has taken its samples.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shovel-metrics/shovel/router/internal/ratelimit"
	"github.com/shovel-metrics/shovel/router/memory"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Config is a fully built router: plugins instantiated, names resolved.
type Config struct {
	Routes  []Route
	Outputs []OutputConfig
	// Window bounds sample timestamps relative to now; zero fields disable it.
	Window TimeWindow
	// DeadLetter, when set, receives every message that no route matches or
	// that a decoder rejects whole; such a message is acknowledged only
	// after the dead-letter write succeeds.
	DeadLetter DeadLetter
	// Logger receives the router's own log lines; nil discards them.
	Logger *slog.Logger
	// Registerer receives the router's Prometheus metrics; nil for none.
	// Ignored when Stats is set.
	Registerer prometheus.Registerer
	// Stats, when set, is shared with earlier router generations (see NewStats).
	Stats *Stats
	// Output bounds what each message may decode into (Result.Budget);
	// zero fields take metric.DefaultOutputLimits.
	Output metric.OutputLimits
	// Budget is the memory budget that decoded samples, queued batches and
	// dead letters in flight are charged to. Share one with the Kafka
	// consumer and every router generation; nil makes a default one.
	Budget *memory.Budget
	// Workers is how many messages are decoded at once (0: one per CPU).
	// A message holds its slot only while it is decoded, never while it
	// waits for an output's queue, so a stalled output holds no slot.
	Workers int
}

// TimeWindow keeps a producer with a wrong clock from writing into whisper
// files years away: samples older than MaxAge or further than MaxFuture
// ahead are rejected, or moved to the window's edge when Clamp is set.
type TimeWindow struct {
	MaxAge    time.Duration
	MaxFuture time.Duration
	Clamp     bool
	// Now is the clock the window is judged by; nil is time.Now. `shovel
	// decode --now` replays captured messages as of their time.
	Now func() time.Time
}

// DeadLetter stores messages shovel could not use, with the reason.
type DeadLetter interface {
	// Send writes msg with its reason; done is called once the write is
	// durable. Send may block for back-pressure and returns an error only
	// when ctx ends first.
	Send(ctx context.Context, msg *metric.Message, reason, detail string, done func()) error
}

// ReasonOutOfWindow counts samples whose timestamp is outside the window.
const ReasonOutOfWindow = "ts_out_of_window"

// Route sends the messages it matches through Decoder to the outputs named in Outputs.
type Route struct {
	// Name identifies the route in logs and counters ("routes[0]" when unnamed).
	Name    string
	Match   Match
	Decoder metric.Decoder
	// DecoderName labels rejection counters.
	DecoderName string
	// Rules filter and rewrite each sample's path, in order (see CompileRules).
	Rules   []Rule
	Outputs []string
	// Continue lets the routes after this one see a message it matched;
	// by default the first matching route is the only one.
	Continue bool
}

// OutputConfig is one output instance with the router's policy around it.
type OutputConfig struct {
	Name   string
	Output metric.Output
	// Fallback names the output that takes this one's batches while this one
	// cannot deliver; empty for none.
	Fallback string
	// BatchSize is the number of samples after which a batch is written at once.
	BatchSize int
	// FlushInterval bounds how long a sample waits for its batch to fill.
	FlushInterval time.Duration
	// QueueSize is how many messages may wait for this output before the
	// router stops taking new ones.
	QueueSize int
	// QueueBytes bounds the bytes of samples waiting for this output (as
	// the memory budget counts them); 0 gives each output an equal part
	// of half the budget. It is what bounds memory while Carbon is away.
	QueueBytes int64
}

// Defaults for OutputConfig fields left zero.
const (
	DefaultBatchSize     = 5000
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultQueueSize     = 1024
)

// Router's Handle is safe for concurrent use: the consumer hands each
// partition to one worker, so partitions are decoded in parallel while each
// stays in order. Close must come after the last Handle returned.
type Router struct {
	routes []compiledRoute
	sinks  map[string]*sink
	order  []*sink
	log    *slog.Logger
	limit  *ratelimit.Limiter
	stats  *Stats
	window TimeWindow
	output metric.OutputLimits
	dead   DeadLetter
	now    func() time.Time
	budget *memory.Budget
	slots  chan struct{} // one per decode in progress

	tallies sync.Pool // *tally, one per Handle call in flight

	runCtx    context.Context
	cancelRun context.CancelFunc
	aborted   chan struct{} // closed by Abort: Handle gives up waiting
	inflight  atomic.Int64  // Switch.Handle calls inside this router
	abortOnce sync.Once
	wg        sync.WaitGroup
	closeOnce sync.Once
	injectMu  sync.RWMutex // Inject holds it for reading; Close marks closed under it
	closed    bool
}

type compiledRoute struct {
	Route
	sinks   []*sink
	decoded func(n int)
	// counted counts a message the route took, the samples it delivered
	// and those its rules dropped.
	counted func(samples, ruleDropped int)
	// scratch is per route, so that the chunks deliveries are carved from
	// hold one route's samples: a route whose output is stalled pins only
	// its own chunks, not chunks mostly filled by other routes' delivered
	// samples.
	scratch *sync.Pool // *scratch, one per route call in flight
	// copies is how many times a sample is held: the delivery, and a copy
	// in each sink's batch.
	copies int
	// checkPaths is false when the decoder vouches for its paths
	// (metric.CheckedPaths) and no rule of the route changes them.
	checkPaths bool
}

// New checks cfg and builds a router. It does no I/O: call Start to connect
// the outputs and start their sinks.
func New(cfg Config) (*Router, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stats := cfg.Stats
	if stats == nil {
		var err error
		if stats, err = NewStats(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("router: metrics: %w", err)
		}
	}
	if cfg.Output.Ratio <= 0 {
		cfg.Output.Ratio = metric.DefaultOutputRatio
	}
	if cfg.Output.Min <= 0 {
		cfg.Output.Min = metric.DefaultOutputMin
	}
	budget := cfg.Budget
	if budget == nil {
		budget = memory.New(0)
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	r := &Router{
		budget:  budget,
		slots:   make(chan struct{}, workers),
		sinks:   make(map[string]*sink, len(cfg.Outputs)),
		log:     log,
		limit:   stats.logLimit, // shared by every generation, as the counters are
		stats:   stats,
		window:  cfg.Window,
		output:  cfg.Output,
		aborted: make(chan struct{}),
		dead:    cfg.DeadLetter,
		now:     time.Now,
	}
	if cfg.Window.Now != nil {
		r.now = cfg.Window.Now
	}
	guarded := make(map[string]*guardedOutput, len(cfg.Outputs))
	for _, oc := range cfg.Outputs {
		if oc.Name == "" || oc.Output == nil {
			return nil, errors.New("router: output with empty name or nil Output")
		}
		if _, dup := guarded[oc.Name]; dup {
			return nil, fmt.Errorf("router: output %q defined twice", oc.Name)
		}
		guarded[oc.Name] = &guardedOutput{name: oc.Name, out: oc.Output}
	}
	for _, oc := range cfg.Outputs {
		chain, err := fallbackChain(oc.Name, cfg.Outputs)
		if err != nil {
			return nil, err
		}
		if oc.QueueBytes <= 0 {
			oc.QueueBytes = budget.Limit() / 2 / int64(len(cfg.Outputs))
		}
		s, err := newSink(oc, chain, guarded, r.stats, budget.Gate(oc.Name), log.With("output", oc.Name))
		if err != nil {
			return nil, fmt.Errorf("router: metrics: %w", err)
		}
		r.sinks[oc.Name] = s
		r.order = append(r.order, s)
	}
	for i, rt := range cfg.Routes {
		if rt.Name == "" {
			rt.Name = fmt.Sprintf("routes[%d]", i)
		}
		if rt.Decoder == nil {
			return nil, fmt.Errorf("router: %s has no decoder", rt.Name)
		}
		if len(rt.Outputs) == 0 {
			return nil, fmt.Errorf("router: %s has no outputs", rt.Name)
		}
		rules, err := CompileRules(rt.Rules)
		if err != nil {
			return nil, fmt.Errorf("router: %s: %w", rt.Name, err)
		}
		rt.Rules = rules
		vouched, _ := rt.Decoder.(metric.CheckedPaths)
		cr := compiledRoute{Route: rt, decoded: r.stats.decodedCounter(rt.DecoderName), counted: r.stats.routeCounter(rt.Name),
			scratch:    &sync.Pool{},
			checkPaths: vouched == nil || !vouched.PathsChecked() || rulesChangePaths(rules)}
		for _, name := range rt.Outputs {
			s, ok := r.sinks[name]
			if !ok {
				return nil, fmt.Errorf("router: %s names unknown output %q", rt.Name, name)
			}
			cr.sinks = append(cr.sinks, s)
		}
		cr.copies = 1 + len(cr.sinks)
		r.routes = append(r.routes, cr)
	}
	return r, nil
}

// fallbackChain returns the outputs start falls back to, in order. It
// rejects cycles (a → b → a), which would bounce a batch between two dead
// outputs forever.
func fallbackChain(start string, outs []OutputConfig) ([]string, error) {
	byName := make(map[string]string, len(outs))
	for _, o := range outs {
		byName[o.Name] = o.Fallback
	}
	var chain []string
	seen := map[string]bool{start: true}
	for cur := byName[start]; cur != ""; cur = byName[cur] {
		if _, ok := byName[cur]; !ok {
			return nil, fmt.Errorf("router: output %q falls back to unknown output %q", start, cur)
		}
		if seen[cur] {
			return nil, fmt.Errorf("router: output %q: fallback chain loops back to %q", start, cur)
		}
		seen[cur] = true
		chain = append(chain, cur)
	}
	return chain, nil
}

// Start connects every output (a failure is logged, not fatal: sinks keep
// retrying) and starts the sinks. ctx bounds the connection attempts only.
func (r *Router) Start(ctx context.Context) {
	r.runCtx, r.cancelRun = context.WithCancel(context.Background())
	for _, s := range r.order {
		if err := s.primary.out.Connect(ctx); err != nil {
			r.log.Debug("output not reachable yet; will keep trying", "output", s.name, "err", err)
		}
		r.wg.Add(1)
		go func(s *sink) {
			defer r.wg.Done()
			s.run(r.runCtx)
		}(s)
	}
}

// Stats returns the router's counters.
func (r *Router) Stats() *Stats { return r.stats }

// Handle routes, decodes and enqueues one message. done is called exactly
// once, when every output the message went to has taken its samples (or
// the dead-letter topic has it, or at once when the message yields nothing
// to deliver). Handle blocks while an output's queue is full — that is how
// back-pressure reaches the consumer — and returns ctx.Err() if ctx ends
// first, in which case done is never called and the message must not be
// committed.
func (r *Router) Handle(ctx context.Context, msg *metric.Message, done func()) error {
	g := &ackGroup{done: done, budget: r.budget}
	g.pending.Store(1) // Handle's own hold, released once every route has enqueued
	// Counted once handled: a message Handle gives up on (shutdown, a
	// reload's abort) is handled again later, by the next generation or
	// after a restart, and must not count twice. So what it decodes,
	// rejects, repairs and skips is tallied, and counted only on success.
	t, _ := r.tallies.Get().(*tally)
	if t == nil {
		t = &tally{r: r}
	}
	defer func() {
		t.reset()
		r.tallies.Put(t)
	}()
	var typ msgType
	matched := false
	for i := range r.routes {
		rt := &r.routes[i]
		if !rt.Match.matches(msg, &typ) {
			continue
		}
		matched = true
		if err := r.route(ctx, rt, msg, g, t); err != nil {
			g.abandon()
			return err
		}
		if !rt.Continue {
			break
		}
	}
	if !matched {
		reason := noRouteReason(&typ)
		what := noRouteWhat(reason)
		t.reject(msg, "", reason, what, nil)
		if err := r.deadLetter(ctx, msg, reason, what, g); err != nil {
			g.abandon()
			return err
		}
	}
	t.count()
	r.stats.message()
	g.ack()
	return nil
}

// route decodes msg with rt's decoder and enqueues its samples to rt's outputs.
func (r *Router) route(ctx context.Context, rt *compiledRoute, msg *metric.Message, g *ackGroup, t *tally) error {
	d, skip, err := r.decode(rt, msg, g, t)
	if skip != "" {
		// Not for this decoder, and rightly so: counted, not logged,
		// not dead-lettered; the message is acknowledged.
		t.skips = tallyAdd(t.skips, RejectKey{Decoder: rt.DecoderName, Reason: skip}, 1)
		return nil
	}
	if err != nil {
		reason := metric.ReasonOf(err)
		t.reject(msg, rt.DecoderName, reason, err.Error(), nil)
		return r.deadLetter(ctx, msg, reason, err.Error(), g)
	}
	if d == nil {
		return nil
	}
	t.decoded = append(t.decoded, decodedTally{rt.decoded, len(d.samples)})
	g.pending.Add(int32(len(rt.sinks)))
	for i, s := range rt.sinks {
		if err := s.enqueue(ctx, r.aborted, d); err != nil {
			// The sinks that did not get d will never acknowledge it.
			g.pending.Add(-int32(len(rt.sinks) - i))
			return err
		}
	}
	return nil
}

// decode runs decide in one of the router's decode slots and returns the
// delivery for rt's outputs, charged to the budget; nil when nothing is
// left to deliver, with decide's skip reason or error if it gave one. The
// slot is given back before any wait for an output's queue.
func (r *Router) decode(rt *compiledRoute, msg *metric.Message, g *ackGroup, t *tally) (*delivery, string, error) {
	r.slots <- struct{}{}
	defer func() { <-r.slots }()
	sc, _ := rt.scratch.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	defer func() {
		sc.res.Trim() // a large message's room is not kept for the next
		rt.scratch.Put(sc)
	}()
	samples, dropped, skip, err := r.decide(rt, msg, &sc.res, t)
	t.routes = append(t.routes, routeTally{rt.counted, len(samples), dropped})
	if skip != "" || err != nil || len(samples) == 0 {
		return nil, skip, err
	}
	// One copy shared read-only by every sink: res is reused by the next call.
	d := g.delivery(sc.carve(samples))
	d.cost = int64(rt.copies * metric.SampleOverhead * len(samples))
	for i := range samples {
		d.cost += int64(len(samples[i].Path))
	}
	g.charge(d.cost)
	return d, "", nil
}

// rejecter takes the samples (and messages) the router drops: the router
// itself, which counts and logs them, or a dry run, which lists them.
type rejecter interface {
	reject(msg *metric.Message, decoder, reason, what string, rj *metric.Rejection)
	// repair takes a tag repaired or dropped in a sample that went on.
	repair(msg *metric.Message, decoder string, rj metric.Rejection)
}

// decide is everything the router does with a message on one route before
// delivering it: decode within the output budget, apply the rules, check
// every sample and hold it to the time window. Handle and DryRun both call
// it, so that `shovel decode` shows exactly what the router does. It
// returns the samples to deliver (in res's memory), or the decoder's skip
// reason, or the error that rejects the message whole; dropped samples go
// to rs.
func (r *Router) decide(rt *compiledRoute, msg *metric.Message, res *metric.Result, rs rejecter) (samples []metric.Sample, ruleDropped int, skip string, err error) {
	res.Reset()
	res.Budget = r.output.Budget(msg.Size())
	if err := decodeWithin(rt.Decoder, msg, res); err != nil {
		if reason, ok := metric.SkipReason(err); ok {
			return nil, 0, reason, nil
		}
		return nil, 0, "", err
	}
	// Rules first: a rewrite can make a path unsafe, and every path must be
	// checked as it will be written. And what they add is charged to the
	// budget, which may reject the message whole: before any of its
	// samples is counted as dropped.
	samples, err = applyRules(rt.Rules, res.Samples, res)
	if err != nil {
		return nil, 0, "", metric.Rejectf(metric.ReasonOverBudget, "the route's rules grew its samples past the output budget of %d bytes for this %d-byte message", res.Budget, msg.Size())
	}
	for _, rj := range res.Rejected {
		rs.reject(msg, rt.DecoderName, rj.Reason, "sample dropped", &rj)
	}
	for _, rj := range res.Repaired {
		rs.repair(msg, rt.DecoderName, rj)
	}
	return r.checkSamples(msg, rt.DecoderName, samples, rt.checkPaths, rs), len(res.Samples) - len(samples), "", nil
}

// noRouteReason is the reason a message no route takes is rejected for:
// the reason it has no type (invalid_json, no_type) when a route asked
// for its type, no_route otherwise.
func noRouteReason(typ *msgType) string {
	if typ.done && typ.raw == nil && typ.reason != "" {
		return typ.reason
	}
	return metric.ReasonNoRoute
}

// noRouteWhat says why no route took a message, for the log line and
// the dead letter's detail: the routes that match on "type" could not read
// one, or none matches.
func noRouteWhat(reason string) string {
	switch reason {
	case metric.ReasonNoRoute:
		return "no route matches"
	case metric.ReasonInvalidJSON:
		return "not valid JSON: no route can read its type"
	case metric.ReasonNoType:
		return "no top-level \"type\" string: no route that matches on type takes it"
	default:
		return reason + ": no route can read its type"
	}
}

// Outcome is what the router does with a message on one route it matches,
// or with a message no route matches (Route empty).
type Outcome struct {
	Route   string
	Decoder string
	// Outputs are the route's outputs, which get Samples (each falling
	// back as configured while it cannot deliver).
	Outputs []string
	// Samples are as the outputs would get them: after the rules, the
	// checks and the time window.
	Samples []metric.Sample
	// RuleDropped counts the samples the route's keep and drop rules left
	// out (not rejections: the rules asked for it).
	RuleDropped int
	// Rejected are the samples dropped, by the decoder or the router,
	// each with the router's reason.
	Rejected []metric.Rejection
	// Repaired are the tags repaired or dropped in samples that went on.
	Repaired []metric.Rejection
	// Reason and Detail say why the message was rejected whole (and
	// dead-lettered, when a dead-letter topic is set); empty otherwise.
	Reason, Detail string
	// Skip is the decoder's reason for passing the message over as not
	// its own (counted, not rejected).
	Skip string
}

// DryRun returns what Handle would do with msg — the routes it takes, the
// samples each delivers and to which outputs, every rejection with its
// reason — without delivering, counting or logging anything. asType, when
// set, stands for the message's "type" (for messages that have none).
// It needs no Start and does no I/O.
func (r *Router) DryRun(msg *metric.Message, asType string) []Outcome {
	var typ msgType
	if asType != "" {
		typ = msgType{done: true, value: asType}
	}
	var outs []Outcome
	for i := range r.routes {
		rt := &r.routes[i]
		if !rt.Match.matches(msg, &typ) {
			continue
		}
		var res metric.Result
		var rec dryRejects
		samples, dropped, skip, err := r.decide(rt, msg, &res, &rec)
		o := Outcome{Route: rt.Name, Decoder: rt.DecoderName, Outputs: rt.Outputs,
			Samples: append([]metric.Sample(nil), samples...), RuleDropped: dropped,
			Rejected: rec.rejected, Repaired: rec.repaired, Skip: skip}
		if err != nil {
			o.Reason, o.Detail = metric.ReasonOf(err), err.Error()
			var re *metric.RejectError
			if errors.As(err, &re) {
				o.Detail = re.Detail
			}
		}
		outs = append(outs, o)
		if !rt.Continue {
			break
		}
	}
	if len(outs) == 0 {
		reason := noRouteReason(&typ)
		outs = append(outs, Outcome{Reason: reason, Detail: noRouteWhat(reason)})
	}
	return outs
}

// dryRejects lists the samples a dry run drops.
type dryRejects struct{ rejected, repaired []metric.Rejection }

func (d *dryRejects) reject(_ *metric.Message, _, _, _ string, rj *metric.Rejection) {
	if rj != nil {
		d.rejected = append(d.rejected, *rj)
	}
}

func (d *dryRejects) repair(_ *metric.Message, _ string, rj metric.Rejection) {
	d.repaired = append(d.repaired, rj)
}

// ReasonAlreadyDeadLettered labels a rejected message that is not
// dead-lettered because it carries shovel's dead-letter headers: it was
// read from a dead-letter topic, and writing it to one again could loop.
const ReasonAlreadyDeadLettered = "already_dead_lettered"

func (r *Router) deadLetter(ctx context.Context, msg *metric.Message, reason, detail string, g *ackGroup) error {
	if r.dead == nil {
		return nil
	}
	if _, ok := msg.Header(metric.HeaderDeadLetterReason); ok {
		// Acknowledged like any rejected message without a dead-letter
		// topic: counted, logged at a bounded rate.
		r.stats.deadLetterSkipped(ReasonAlreadyDeadLettered)
		if n, ok := r.limit.Allow("dead_letter/" + ReasonAlreadyDeadLettered); ok {
			attrs := []any{"reason", reason, "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset}
			if n > 0 {
				attrs = append(attrs, "suppressed", n)
			}
			r.log.Warn("rejected message not dead-lettered: it already is a dead letter", attrs...)
		}
		return nil
	}
	// The writer holds the message until the broker has it.
	cost := memory.MessageCost(msg)
	r.budget.Charge(memory.DeadLetters, cost)
	g.pending.Add(1)
	if err := r.dead.Send(ctx, msg, reason, detail, func() {
		r.budget.Release(memory.DeadLetters, cost)
		g.ack()
	}); err != nil {
		r.budget.Release(memory.DeadLetters, cost)
		g.pending.Add(-1)
		return err
	}
	r.stats.deadLetter()
	return nil
}

// ackGroup calls done when every delivery of one message has been taken,
// and then returns what its deliveries were charged to the budget.
type ackGroup struct {
	pending atomic.Int32
	done    func()
	first   delivery // the first route's, allocated with the group (in use once its group is set)
	budget  *memory.Budget
	// charged is written by Handle's goroutine only, before Handle
	// releases its own hold; the last ack reads it.
	charged   int64
	abandoned atomic.Bool // Handle gave up: release, but never call done
}

func (g *ackGroup) charge(n int64) {
	g.charged += n
	g.budget.Charge(memory.Samples, n)
}

// abandon releases Handle's hold on a message it gave up on: what its
// outputs took is delivered and released, but the message is never
// acknowledged.
func (g *ackGroup) abandon() {
	g.abandoned.Store(true)
	g.ack()
}

// delivery returns a delivery of samples that acknowledges to g.
func (g *ackGroup) delivery(samples []metric.Sample) *delivery {
	if g.first.group == nil { // most messages take one route: one allocation for both
		g.first = delivery{samples: samples, group: g}
		return &g.first
	}
	return &delivery{samples: samples, group: g}
}

// scratch is what one route call works in, reused through a pool.
type scratch struct {
	res     metric.Result
	samples []metric.Sample // room for deliveries' copies of res.Samples
}

// sampleChunk is how many samples' room carve allocates at a time.
const sampleChunk = 1024

// carve copies samples into room that outlives the call (sinks hold it
// until written), taking it from a chunk shared by many messages rather
// than allocating per message. A chunk is freed once every delivery
// carved from it is; carved samples are never written again.
func (sc *scratch) carve(samples []metric.Sample) []metric.Sample {
	n := len(samples)
	if n > sampleChunk/4 {
		return append([]metric.Sample(nil), samples...)
	}
	if cap(sc.samples)-len(sc.samples) < n {
		sc.samples = make([]metric.Sample, 0, sampleChunk)
	}
	start := len(sc.samples)
	sc.samples = append(sc.samples, samples...)
	return sc.samples[start : start+n : start+n]
}

func (g *ackGroup) ack() {
	if g.pending.Add(-1) == 0 {
		if g.charged != 0 {
			g.budget.Release(memory.Samples, g.charged)
		}
		if !g.abandoned.Load() {
			g.done()
		}
	}
}

// checkSamples drops, in place, samples that no output can carry safely:
// an invalid path (a space or newline would inject a Carbon line) or a
// non-finite value. Decoders are expected to do this already; the router
// checks again because a decoder registered by a user may not.
// checkPaths false skips ValidPath (see metric.CheckedPaths).
func (r *Router) checkSamples(msg *metric.Message, decoder string, in []metric.Sample, checkPaths bool, rs rejecter) []metric.Sample {
	out := in[:0]
	var oldest, newest float64 = 0, math.Inf(1)
	if r.window.MaxAge > 0 || r.window.MaxFuture > 0 {
		now := r.now()
		if r.window.MaxAge > 0 {
			oldest = float64(now.Add(-r.window.MaxAge).Unix())
		}
		if r.window.MaxFuture > 0 {
			newest = float64(now.Add(r.window.MaxFuture).Unix())
		}
	}
	for _, s := range in {
		switch {
		case checkPaths && !metric.ValidPath(s.Path):
			reason := metric.PathReason(s.Path)
			rs.reject(msg, decoder, reason, "sample dropped", &metric.Rejection{Path: s.Path, Reason: reason})
		case !finite(s.Value):
			rs.reject(msg, decoder, metric.ReasonNotFinite, "sample dropped", &metric.Rejection{Path: s.Path, Reason: metric.ReasonNotFinite})
		case !finite(s.Time) || s.Time < 0:
			rs.reject(msg, decoder, metric.ReasonBadTimestamp, "sample dropped", &metric.Rejection{Path: s.Path, Reason: metric.ReasonBadTimestamp})
		case s.Time < oldest || s.Time > newest:
			if !r.window.Clamp {
				rs.reject(msg, decoder, ReasonOutOfWindow, "sample dropped", &metric.Rejection{Path: s.Path, Reason: ReasonOutOfWindow})
				continue
			}
			s.Time = min(max(s.Time, oldest), newest)
			out = append(out, s)
		default:
			out = append(out, s)
		}
	}
	return out
}

func finite(f float64) bool { return f-f == 0 }

// safeDecode turns a decoder panic into a rejection: one hostile message
// must not take the router down with it.
func safeDecode(d metric.Decoder, msg *metric.Message, res *metric.Result) (err error) {
	defer func() {
		if p := recover(); p != nil {
			res.Reset()
			err = metric.Rejectf("decoder_panic", "%v", p)
		}
	}()
	return d.Decode(msg, res)
}

// decodeWithin decodes msg into res and holds the result to res.Budget.
// The built-in decoders charge the budget as they go (Result.Add) and stop
// at the first sample past it; a decoder that appends to res.Samples
// itself is caught here, after the fact, by the cost of what it returned.
// Either way the message is rejected whole, as output_budget.
func decodeWithin(d metric.Decoder, msg *metric.Message, res *metric.Result) error {
	err := safeDecode(d, msg, res)
	if err == nil {
		err = res.Over()
	}
	if errors.Is(err, metric.ErrOverBudget) { // the shared error: say by how much
		return metric.Rejectf(metric.ReasonOverBudget, "decoding passed the output budget of %d bytes for this %d-byte message", res.Budget, msg.Size())
	}
	if err != nil {
		return err
	}
	if c := res.Cost(); res.Budget > 0 && c > res.Budget {
		return metric.Rejectf(metric.ReasonOverBudget, "decoded into %d bytes, more than the output budget of %d bytes for this %d-byte message", c, res.Budget, msg.Size())
	}
	return nil
}

func (r *Router) match(msg *metric.Message, typ *msgType) *compiledRoute {
	for i := range r.routes {
		if r.routes[i].Match.matches(msg, typ) {
			return &r.routes[i]
		}
	}
	return nil
}

// tally is what one Handle call counts, held until the call succeeds.
type tally struct {
	r       *Router
	routes  []routeTally
	decoded []decodedTally
	rejects []rejectTally // one per distinct key: a message of a million bad lines has a few
	repairs []rejectTally
	skips   []rejectTally
}

type routeTally struct {
	add              func(samples, ruleDropped int)
	samples, dropped int
}

type decodedTally struct {
	add func(n int)
	n   int
}

type rejectTally struct {
	key RejectKey
	n   uint64
}

func tallyAdd(ts []rejectTally, key RejectKey, n uint64) []rejectTally {
	for i := range ts {
		if ts[i].key == key {
			ts[i].n += n
			return ts
		}
	}
	return append(ts, rejectTally{key, n})
}

// reject tallies a rejection and logs it now, at a bounded rate per
// reason: a log line is not a count, and an operator should see it.
func (t *tally) reject(msg *metric.Message, decoder, reason, what string, rj *metric.Rejection) {
	t.rejects = tallyAdd(t.rejects, RejectKey{Decoder: decoder, Reason: reason, Sample: rj != nil}, 1)
	t.r.logReject(msg, decoder, reason, what, rj)
}

func (t *tally) repair(msg *metric.Message, decoder string, rj metric.Rejection) {
	t.repairs = tallyAdd(t.repairs, RejectKey{Decoder: decoder, Reason: rj.Reason, Sample: true}, 1)
	t.r.logRepair(msg, decoder, rj)
}

// count adds the tally to the router's counters.
func (t *tally) count() {
	s := t.r.stats
	for _, x := range t.routes {
		x.add(x.samples, x.dropped)
	}
	for _, d := range t.decoded {
		d.add(d.n)
	}
	for _, x := range t.rejects {
		s.reject(x.key.Decoder, x.key.Reason, x.key.Sample, x.n)
	}
	for _, x := range t.repairs {
		s.tagRepair(x.key.Decoder, x.key.Reason, x.n)
	}
	for _, x := range t.skips {
		s.skip(x.key.Decoder, x.key.Reason, x.n)
	}
}

func (t *tally) reset() {
	clear(t.decoded) // drop the counters' closures of a retiring generation
	clear(t.routes)
	t.routes, t.decoded, t.rejects, t.repairs, t.skips = t.routes[:0], t.decoded[:0], t.rejects[:0], t.repairs[:0], t.skips[:0]
}

// logReject logs a rejection at a bounded rate per reason.
func (r *Router) logReject(msg *metric.Message, decoder, reason, what string, rj *metric.Rejection) {
	if n, ok := r.limit.Allow(decoder + "/" + reason); ok {
		attrs := []any{
			"reason", reason, "decoder", decoder,
			"topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset,
			"excerpt", excerpt(msg.Value, 120),
		}
		if rj != nil {
			attrs = append(attrs, "path", excerpt([]byte(rj.Path), 120))
		}
		if n > 0 {
			attrs = append(attrs, "suppressed", n)
		}
		r.log.Warn(what, attrs...)
	}
}

// logRepair logs a tag repaired or dropped in a sample that went on, at a
// bounded rate per reason.
func (r *Router) logRepair(msg *metric.Message, decoder string, rj metric.Rejection) {
	if n, ok := r.limit.Allow(decoder + "/" + rj.Reason); ok {
		attrs := []any{
			"reason", rj.Reason, "decoder", decoder,
			"topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset,
			"path", excerpt([]byte(rj.Path), 120),
		}
		if n > 0 {
			attrs = append(attrs, "suppressed", n)
		}
		r.log.Warn("tag repaired", attrs...)
	}
}

// excerpt returns at most n bytes of b as valid UTF-8; slog's handlers
// quote control characters, so a hostile message cannot forge log lines.
func excerpt(b []byte, n int) string {
	if len(b) > n {
		return strings.ToValidUTF8(string(b[:n]), "\uFFFD") + fmt.Sprintf("…(%d bytes)", len(b))
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// Inject hands samples that come from shovel itself (its self-metrics) to
// the named outputs. They are not Kafka messages, so nothing waits for
// them: an output whose queue is full skips them rather than hold anything
// up, and Inject reports which ones did.
func (r *Router) Inject(outputs []string, samples []metric.Sample) error {
	// Inject may race with Close (a reporter holding a generation that a
	// reload is retiring): the read lock keeps the queues open meanwhile.
	r.injectMu.RLock()
	defer r.injectMu.RUnlock()
	if r.closed {
		return errors.New("router: inject: closed")
	}
	// Not charged: a few hundred samples a report, and Inject never waits.
	d := &delivery{samples: samples, group: &ackGroup{done: func() {}, budget: r.budget}}
	var skipped []string
	for _, name := range outputs {
		s, ok := r.sinks[name]
		if !ok {
			return fmt.Errorf("router: inject: unknown output %q", name)
		}
		d.group.pending.Add(1)
		select {
		case s.in <- d:
		default:
			skipped = append(skipped, name)
		}
	}
	if len(skipped) > 0 {
		return fmt.Errorf("router: inject: queue full for %s", strings.Join(skipped, ", "))
	}
	return nil
}

// handOver gives each of r's outputs' queues to next's output of the same
// name, if next has one and shares r's budget (see sink.handOver). Call it
// once r takes no more messages (Abort, and no Handle in progress).
func (r *Router) handOver(next *Router) {
	if next.budget != r.budget {
		return
	}
	for _, s := range r.order {
		if ns, ok := next.sinks[s.name]; ok {
			s.handOver(ns)
		}
	}
}

// ErrAborted is returned by Handle when Abort was called while it waited:
// the message was not (fully) taken and must be handed to another router.
var ErrAborted = errors.New("router: aborted")

// Abort makes Handle calls that wait for a full queue return ErrAborted,
// now and later. The sinks go on delivering what they hold.
func (r *Router) Abort() { r.abortOnce.Do(func() { close(r.aborted) }) }

func (r *Router) isAborted() bool {
	select {
	case <-r.aborted:
		return true
	default:
		return false
	}
}

// Readiness reports each output's ability to deliver: "" when it can, by
// itself or through its fallback, otherwise why not.
//
// Only outputs that routes send to are reported: an output used only as a
// fallback being down does not stop shovel from doing its job.
func (r *Router) Readiness() map[string]string {
	out := make(map[string]string, len(r.order))
	for _, rt := range r.routes {
		for _, s := range rt.sinks {
			out[s.name] = s.readiness()
		}
	}
	return out
}

// Close stops taking messages, flushes what the sinks hold (retrying until
// ctx ends), closes the outputs and waits for the sinks to finish. Batches
// not delivered by then are not acknowledged, so their offsets stay
// uncommitted and are delivered again after a restart.
func (r *Router) Close(ctx context.Context) error {
	var errs []error
	r.closeOnce.Do(func() {
		r.injectMu.Lock()
		r.closed = true
		r.injectMu.Unlock()
		for _, s := range r.order {
			s.close()
		}
		finished := make(chan struct{})
		go func() { r.wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-ctx.Done():
			r.cancelRun()
			<-finished
			errs = append(errs, fmt.Errorf("router: shutdown deadline reached with undelivered batches: %w", ctx.Err()))
		}
		r.cancelRun()
		for _, s := range r.order {
			if err := s.primary.out.Close(); err != nil {
				errs = append(errs, fmt.Errorf("router: close output %q: %w", s.name, err))
			}
		}
	})
	return errors.Join(errs...)
}
