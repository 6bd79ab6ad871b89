// Package kafka is shovel's Kafka source, built on confluent-kafka-go
// (librdkafka). It is the only package that needs cgo: the rest of shovel
// sees messages as metric.Message and acknowledges them with a func().
package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shovel-metrics/shovel/router/internal/ratelimit"
	"github.com/shovel-metrics/shovel/router/memory"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Config says what to consume.
type Config struct {
	// Brokers is librdkafka's bootstrap.servers: a comma-separated host:port list.
	Brokers string
	// Topics are names, or regular expressions when they start with "^".
	Topics []string
	// Group is the consumer group: members share partitions and committed offsets.
	Group string
	// Start is where a partition with no committed offset begins: "earliest" or "latest".
	Start string
	// Settings are extra librdkafka properties; they override shovel's defaults.
	Settings map[string]any
	// Registerer receives shovel_kafka_consumer_lag; nil for none.
	Registerer prometheus.Registerer
	// InstanceID is kafka.instance_id: the group.instance.id of static
	// membership; "" picks one per host (see claimInstance), "none" turns
	// static membership off.
	InstanceID string
	// LockDir holds the instance-id locks; "" is DefaultLockDir().
	LockDir string
	// Budget is the memory budget polled messages are charged to, from the
	// poll until the handler returns; share it with the router. Nil makes
	// a default one. A quarter of it is shared out among the assigned
	// partitions: a partition holding more than its share is paused.
	Budget *memory.Budget
}

// Handler takes one message. It may block to apply back-pressure; it must
// call done once every output has taken the message's samples, and it
// returns an error only when ctx ends. Messages of a partition are handed
// to it one at a time, in offset order; each partition has its own
// goroutine, so a call blocked for one partition holds up no other.
type Handler func(ctx context.Context, msg *metric.Message, done func()) error

// Consumer reads a consumer group's partitions and stores each partition's
// offset only up to the last message whose samples every output has taken.
type Consumer struct {
	c   *ck.Consumer
	cfg Config
	log *slog.Logger

	budget *memory.Budget

	mu       sync.Mutex
	trackers map[partKey]*partTracker
	assigned []ck.TopicPartition
	paused   bool // all partitions paused: the budget is spent

	// The partitions' goroutines; parts is the poll loop's own.
	parts      map[partKey]*partition
	handler    Handler
	runCtx     context.Context
	partWG     sync.WaitGroup
	progress   chan struct{} // a partition's queue fell to lowWater while the poll loop waited
	waiting    atomic.Bool
	shareBytes atomic.Int64 // see share
	lowWater   atomic.Int64 // half the share

	lastStore time.Time
	logsDone  chan struct{}
	joined    atomic.Bool
	// unreachable is why the brokers cannot be reached, from librdkafka's
	// last transport error, until the group assigns partitions.
	unreachable atomic.Pointer[string]
	instance    *instanceClaim     // nil without static membership
	stopped     atomic.Bool        // Run returned for an error no retry fixes
	limit       *ratelimit.Limiter // paces repeated error lines
	lag         *prometheus.GaugeVec
}

type partKey struct {
	topic     string
	partition int32
}

func key(topic string, partition int32) partKey { return partKey{topic, partition} }

// Defaults are the librdkafka consumer properties shovel starts from;
// kafka.settings overrides them. The benchmark's bare consumer uses them
// too, so that the floor it measures is the same client, configured alike.
func Defaults() ck.ConfigMap {
	return ck.ConfigMap{
		// Offsets are committed in the background, but only the ones the
		// router has stored after delivery; a crash repeats what was
		// delivered in the last interval, about one flush interval.
		"enable.auto.commit":      true,
		"auto.commit.interval.ms": 200,
		"go.logs.channel.enable":  true,
		// librdkafka's default of 1 s stalls a consumer that is catching
		// up each time its prefetch queue fills.
		"fetch.queue.backoff.ms": 20,
		"session.timeout.ms":     30000,
		"fetch.wait.max.ms":      100,
		// Low latency for a trickle: a fetch returns as soon as there is data.
		"fetch.min.bytes": 1,
		// The prefetch queue is most of shovel's memory. Measured with
		// make bench (1M messages): 4 MiB reads as fast as 16 or 32 MiB,
		// and keeps peak RSS near 55-60 MiB with 1 to 8 partitions.
		"queued.max.messages.kbytes": 4096,
	}
}

// New creates the consumer and subscribes; the group is joined on the first Run poll.
func New(cfg Config, log *slog.Logger) (*Consumer, error) {
	cm := Defaults()
	var lag *prometheus.GaugeVec
	if cfg.Registerer != nil {
		// librdkafka computes each partition's lag; it reports it in its
		// statistics, which Run turns into a gauge.
		cm["statistics.interval.ms"] = 5000
		lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shovel_kafka_consumer_lag",
			Help: "Messages between the consumer's position and the partition's end."}, []string{"topic", "partition"})
		if err := cfg.Registerer.Register(lag); err != nil {
			return nil, fmt.Errorf("kafka: metrics: %w", err)
		}
	}
	if consumerProtocol(cfg.Settings) {
		// KIP-848: the broker owns the session and the assignment; librdkafka
		// refuses these classic properties with group.protocol=consumer.
		for _, p := range classicOnly {
			delete(cm, p)
		}
	}
	for k, v := range cfg.Settings {
		cm[k] = v
	}
	// Set last: the delivery guarantee depends on these (config.Validate
	// rejects them in kafka.settings with an explanation).
	cm["bootstrap.servers"] = cfg.Brokers
	cm["group.id"] = cfg.Group
	cm["auto.offset.reset"] = cfg.Start
	cm["enable.auto.offset.store"] = false

	lockDir := cfg.LockDir
	if lockDir == "" {
		lockDir = DefaultLockDir()
	}
	instanceID := cfg.InstanceID
	if instanceID == "" && consumerProtocol(cfg.Settings) {
		// Under KIP-848 a crashed static member holds its id until the
		// broker's session timeout, and the restart is refused with a fatal
		// error meanwhile; a dynamic member waits the same time for the
		// partitions without failing. So no default id (docs/kafka.md).
		instanceID = InstanceNone
	}
	claim, err := claimInstance(instanceID, cfg.Group, lockDir)
	switch {
	case err != nil && (cfg.InstanceID != "" || errors.Is(err, ErrInstanceInUse)):
		return nil, err
	case err != nil:
		log.Warn("no static group membership: a restart waits for the group to rebalance; set kafka.instance_id", "err", err)
	case claim != nil:
		cm["group.instance.id"] = claim.id
	}

	c, err := ck.NewConsumer(&cm)
	if err != nil {
		claim.release()
		return nil, fmt.Errorf("kafka: create consumer for %s: %w", cfg.Brokers, err)
	}
	budget := cfg.Budget
	if budget == nil {
		budget = memory.New(0)
	}
	k := &Consumer{c: c, cfg: cfg, log: log, trackers: map[partKey]*partTracker{}, logsDone: make(chan struct{}), lag: lag,
		limit: ratelimit.New(10 * time.Second), instance: claim, budget: budget, parts: map[partKey]*partition{},
		progress: make(chan struct{}, 1)}
	k.updateShare()
	go forwardLogs(k.c.Logs(), k.log, k.logsDone)
	if claim != nil {
		log.Info("static group membership", "instance_id", claim.id, "group", cfg.Group)
	}
	if err := c.SubscribeTopics(cfg.Topics, k.rebalance); err != nil {
		c.Close()
		claim.release()
		return nil, fmt.Errorf("kafka: subscribe to %s: %w", strings.Join(cfg.Topics, ","), err)
	}
	return k, nil
}

// rebalance runs inside Poll. On revocation it stores and commits what was
// delivered, so that the partition's next owner starts right after it.
//
// Under an incremental protocol (KIP-848's consumer protocol, or the
// classic one with cooperative-sticky) the events list only the partitions
// that are added or taken away, and must be applied with IncrementalAssign
// and IncrementalUnassign; under the eager classic protocol every
// revocation takes the whole assignment.
func (k *Consumer) rebalance(c *ck.Consumer, ev ck.Event) error {
	incremental := c.GetRebalanceProtocol() == "COOPERATIVE"
	switch e := ev.(type) {
	case ck.AssignedPartitions:
		k.log.Info("partitions assigned", "partitions", fmtParts(e.Partitions))
		k.joined.Store(true)
		k.unreachable.Store(nil)
		k.mu.Lock()
		for _, tp := range e.Partitions {
			t := newPartTracker(*tp.Topic, tp.Partition)
			k.trackers[key(*tp.Topic, tp.Partition)] = t
			k.startPartition(tp, t)
		}
		k.assigned = append(k.assigned, e.Partitions...)
		paused := k.paused
		k.mu.Unlock()
		assign := c.Assign
		if incremental {
			assign = c.IncrementalAssign
		}
		if err := assign(e.Partitions); err != nil {
			return fmt.Errorf("kafka: assign: %w", err)
		}
		if paused {
			// Still waiting for an output: new partitions wait too.
			if err := c.Pause(e.Partitions); err != nil {
				k.log.Warn("pause new partitions", "err", err)
			}
		}
	case ck.RevokedPartitions:
		k.log.Info("partitions revoked", "partitions", fmtParts(e.Partitions))
		k.storeOffsets(true)
		if _, err := c.Commit(); err != nil && !isNoOffset(err) {
			k.log.Warn("commit on revoke", "err", err)
		}
		k.mu.Lock()
		var resume []ck.TopicPartition
		for _, tp := range e.Partitions {
			pk := key(*tp.Topic, tp.Partition)
			delete(k.trackers, pk)
			if k.lag != nil {
				// The next owner reports this partition's lag now; a
				// series left here would stay at its last value forever.
				k.lag.DeleteLabelValues(*tp.Topic, strconv.Itoa(int(tp.Partition)))
			}
			if p := k.parts[pk]; p != nil {
				if p.paused || k.paused {
					resume = append(resume, tp)
				}
				p.stop()
				delete(k.parts, pk)
			}
		}
		k.updateShare()
		k.assigned = slices.DeleteFunc(k.assigned, func(a ck.TopicPartition) bool {
			return k.trackers[key(*a.Topic, a.Partition)] == nil
		})
		if len(k.assigned) == 0 {
			k.paused = false
		}
		k.mu.Unlock()
		// A partition assigned again later must not start paused.
		if len(resume) > 0 {
			if err := c.Resume(resume); err != nil {
				k.log.Debug("resume revoked partitions", "err", err)
			}
		}
		var err error
		if incremental {
			err = c.IncrementalUnassign(e.Partitions)
		} else {
			err = c.Unassign()
		}
		if err != nil {
			return fmt.Errorf("kafka: unassign: %w", err)
		}
	}
	return nil
}

func isNoOffset(err error) bool {
	var kerr ck.Error
	return errors.As(err, &kerr) && kerr.Code() == ck.ErrNoOffset
}

func fmtParts(tps []ck.TopicPartition) string {
	var b strings.Builder
	for i, tp := range tps {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s[%d]", *tp.Topic, tp.Partition)
	}
	return b.String()
}

// storeInterval is how often delivered offsets are handed to librdkafka,
// well within its auto.commit.interval.ms.
const storeInterval = 50 * time.Millisecond

// storeOffsets hands the delivered positions to librdkafka, which commits
// them in the background (and synchronously on revoke and close).
func (k *Consumer) storeOffsets(force bool) {
	now := time.Now()
	if !force && now.Sub(k.lastStore) < storeInterval {
		return
	}
	k.lastStore = now
	var tps []ck.TopicPartition
	k.mu.Lock()
	for _, t := range k.trackers {
		if off, ok := t.take(); ok {
			topic := t.topic
			tps = append(tps, ck.TopicPartition{Topic: &topic, Partition: t.partition, Offset: ck.Offset(off)})
		}
	}
	k.mu.Unlock()
	if len(tps) == 0 {
		return
	}
	if _, err := k.c.StoreOffsets(tps); err != nil {
		// Happens when a partition was revoked meanwhile; its messages will
		// be delivered again by its new owner, which is allowed.
		k.log.Debug("store offsets", "err", err)
	}
}

// stallAfter is how long a partition may hold more than its share of the
// budget before it is paused. Until then the poll loop just stops polling
// (librdkafka keeps prefetching into its own bounded queue), because a
// partition whose handler is merely slower than Poll catches up within
// milliseconds, and pausing makes librdkafka drop its prefetched messages
// and fetch them again: at full rate that cost a 27-fold slowdown. Only a
// stall (an output that cannot deliver) is worth a pause, and the paused
// partition then holds up no other.
const stallAfter = time.Second

// Run polls until ctx ends. Each assigned partition has a goroutine that
// calls h for its messages in order: partitions are handled in parallel,
// each in sequence, and one whose handler blocks holds up no other.
func (k *Consumer) Run(ctx context.Context, h Handler) error {
	k.mu.Lock()
	k.handler, k.runCtx = h, ctx
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		for pk, p := range k.parts {
			p.stop()
			delete(k.parts, pk)
		}
		k.mu.Unlock()
		k.partWG.Wait()
	}()

	storeTick := time.NewTicker(storeInterval)
	defer storeTick.Stop()
	wait := time.NewTimer(time.Hour)
	defer wait.Stop()
	var over []*partition // partitions past their share, not paused yet
	var budgetOverSince time.Time
	for ctx.Err() == nil {
		// A partition past its share: stop polling until it catches up,
		// and pause it if it does not within stallAfter.
		if len(over) > 0 {
			over = k.stillOver(over, time.Now())
		}
		budgetOver := k.budget.Over()
		if budgetOver && !k.allPaused() {
			if budgetOverSince.IsZero() {
				budgetOverSince = time.Now()
			} else if time.Since(budgetOverSince) >= stallAfter {
				k.setPaused(true)
			}
		} else if !budgetOver {
			budgetOverSince = time.Time{}
		}
		if len(over) > 0 || (budgetOver && !k.allPaused()) {
			k.waitProgress(ctx, wait, 50*time.Millisecond)
			k.storeOffsets(false)
			k.budget.NotePeak()
			continue
		}
		// Short enough for paused partitions to resume promptly.
		p, err := k.poll(int(storeInterval / time.Millisecond))
		if err != nil {
			return err
		}
		if p != nil && !p.paused && p.queued.Load() > k.share() {
			p.overSince = time.Now()
			over = append(over, p)
		}
		// One ticker, rather than clock reads or a second ticker: each
		// was measurable at full rate (make bench).
		select {
		case <-storeTick.C:
			k.storeOffsets(true)
			k.resumeCaughtUp()
			k.budget.NotePeak()
		default:
		}
	}
	return nil
}

// maxReadahead bounds a partition's queue whatever its share: enough to
// keep its decoding busy while Poll serves the other partitions (the old
// fixed backlog of 2 048 messages was about 600 KB of typical ones), and
// no more, since a deeper queue only holds memory: at full rate a 16 MiB
// queue cost 5-8% more CPU per sample (make bench) and 40 MiB more RSS.
const maxReadahead = 1 << 20

// share is what each partition's queue may hold: a quarter of the budget
// shared out among the assigned partitions, at most maxReadahead. The
// outputs' queues have half of the budget; the last quarter is for what
// is in flight between the two (a message and its samples per partition)
// and dead letters, so that the budget itself is reached, and every
// partition paused, only when those are unusually large.
func (k *Consumer) share() int64 { return k.shareBytes.Load() }

// updateShare computes the share again after a rebalance; k.mu is held.
func (k *Consumer) updateShare() {
	n := int64(max(len(k.parts), 1))
	s := min(k.budget.Limit()/4/n, maxReadahead)
	k.shareBytes.Store(s)
	k.lowWater.Store(s / 2)
}

// stillOver returns the partitions of over that still hold more than half
// their share, pausing those that have for stallAfter.
func (k *Consumer) stillOver(over []*partition, now time.Time) []*partition {
	if len(over) == 0 {
		return over
	}
	low := k.share() / 2
	kept := over[:0]
	for _, p := range over {
		switch {
		case p.stopped() || p.queued.Load() <= low:
		case now.Sub(p.overSince) >= stallAfter:
			k.pausePartition(p)
		default:
			kept = append(kept, p)
		}
	}
	clear(over[len(kept):])
	return kept
}

// resumeCaughtUp resumes paused partitions that hold half their share or
// less, and every partition once the budget is well under its limit.
func (k *Consumer) resumeCaughtUp() {
	if k.allPaused() {
		if k.budget.Used() > k.budget.Limit()*3/4 {
			return
		}
		k.setPaused(false)
	}
	low := k.share() / 2
	var tps []ck.TopicPartition
	k.mu.Lock()
	for _, p := range k.parts {
		if p.paused && p.queued.Load() <= low {
			p.paused = false
			tps = append(tps, p.tp)
		}
	}
	k.mu.Unlock()
	if len(tps) == 0 {
		return
	}
	k.log.Info("partition caught up; resuming it", "partitions", fmtParts(tps))
	if err := k.c.Resume(tps); err != nil {
		k.log.Warn("resume", "err", err)
	}
}

func (k *Consumer) pausePartition(p *partition) {
	k.mu.Lock()
	p.paused = true
	k.mu.Unlock()
	if n, ok := k.limit.Allow("pause " + p.tp.String()); ok {
		k.log.Warn("partition's messages wait for an output; pausing the partition",
			"partition", fmtParts([]ck.TopicPartition{p.tp}), "held_bytes", p.queued.Load(), "share_bytes", k.share(), "suppressed", n)
	}
	if err := k.c.Pause([]ck.TopicPartition{p.tp}); err != nil {
		k.log.Warn("pause", "err", err)
	}
}

func (k *Consumer) allPaused() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.paused
}

// waitProgress waits up to d for a partition to take or finish a message.
func (k *Consumer) waitProgress(ctx context.Context, t *time.Timer, d time.Duration) {
	k.waiting.Store(true)
	defer k.waiting.Store(false)
	t.Reset(d)
	select {
	case <-k.progress:
	case <-t.C:
	case <-ctx.Done():
	}
	if !t.Stop() {
		select { // drain a fired timer so the next Reset starts clean
		case <-t.C:
		default:
		}
	}
}

func (k *Consumer) signalProgress() {
	if k.waiting.Load() {
		select {
		case k.progress <- struct{}{}:
		default:
		}
	}
}

// partition is one assigned partition's queue of polled messages and the
// goroutine that hands them to the handler.
type partition struct {
	k      *Consumer
	tp     ck.TopicPartition
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	queue []polled
	wake  chan struct{} // cap 1: the queue has messages

	queued atomic.Int64 // bytes of the messages in queue

	// The poll loop's own, under k.mu.
	paused    bool
	overSince time.Time
}

// startPartition starts tp's goroutine; k.mu is held.
func (k *Consumer) startPartition(tp ck.TopicPartition, t *partTracker) {
	if k.handler == nil {
		return
	}
	topic := *tp.Topic
	tp.Topic = &topic
	p := &partition{k: k, tp: tp, wake: make(chan struct{}, 1)}
	p.ctx, p.cancel = context.WithCancel(k.runCtx)
	k.parts[key(topic, tp.Partition)] = p
	k.updateShare()
	k.partWG.Add(1)
	go func() {
		defer k.partWG.Done()
		p.run(k.handler)
	}()
}

func (p *partition) stop()         { p.cancel() }
func (p *partition) stopped() bool { return p.ctx.Err() != nil }

func (p *partition) push(m polled) {
	p.queued.Add(m.cost)
	p.mu.Lock()
	p.queue = append(p.queue, m)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run hands the partition's messages to h in order until the partition is
// revoked or the consumer stops; messages it did not hand are dropped (and
// fetched again by the partition's next owner or the next run).
func (p *partition) run(h Handler) {
	budget := p.k.budget
	var batch []polled
	defer func() {
		p.mu.Lock()
		batch = append(batch, p.queue...)
		p.queue = nil
		p.mu.Unlock()
		for _, m := range batch {
			p.queued.Add(-m.cost)
			budget.Release(memory.Messages, m.cost)
		}
	}()
	for {
		p.mu.Lock()
		batch, p.queue = p.queue, batch[:0]
		p.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-p.wake:
				continue
			case <-p.ctx.Done():
				return
			}
		}
		for i, m := range batch {
			if p.ctx.Err() != nil { // revoked, or the consumer stops
				batch = batch[i:]
				return
			}
			// The poll loop waits for a queue past its share to fall to
			// half of it: wake it then, not once per message.
			if q := p.queued.Add(-m.cost); q <= p.k.lowWater.Load() && q+m.cost > p.k.lowWater.Load() {
				p.k.signalProgress()
			}
			err := h(p.ctx, m.msg, offsetAck{m.t, m.msg.Offset}.done)
			budget.Release(memory.Messages, m.cost)
			batch[i] = polled{}
			if err != nil {
				batch = batch[i+1:]
				return
			}
		}
		clear(batch)
		batch = batch[:0]
	}
}

// polled is a message with the tracker of the assignment it was fetched
// under: if its partition is revoked and assigned again meanwhile, its
// acknowledgement goes to the old tracker and changes nothing.
type polled struct {
	msg  *metric.Message
	t    *partTracker
	cost int64 // charged to the budget's messages from the poll until handled
}

// offsetAck acknowledges one offset. It is what the router holds until the
// message's samples are delivered, so it must not hold the message: a
// message's value and headers are garbage once it is decoded (while
// Carbon is down, 300 messages of 50 000 headers each were kept alive by
// their acknowledgement funcs: 690 MiB of heap).
type offsetAck struct {
	t   *partTracker
	off int64
}

func (a offsetAck) done() { a.t.markDone(a.off) }

// poll serves one event; for a message it returns its partition.
func (k *Consumer) poll(timeoutMs int) (*partition, error) {
	switch e := k.c.Poll(timeoutMs).(type) {
	case *ck.Message:
		if e.TopicPartition.Error != nil {
			k.log.Warn("partition error", "topic", *e.TopicPartition.Topic, "partition", e.TopicPartition.Partition, "err", e.TopicPartition.Error)
			return nil, nil
		}
		m := convert(e)
		pk := key(m.Topic, m.Partition)
		k.mu.Lock()
		t := k.trackers[pk]
		p := k.parts[pk]
		k.mu.Unlock()
		if t == nil || p == nil {
			return nil, nil // a straggler from a revoked partition
		}
		t.add(m.Offset)
		cost := memory.MessageCost(m)
		k.budget.Charge(memory.Messages, cost)
		p.push(polled{msg: m, t: t, cost: cost})
		return p, nil
	case ck.Error:
		if err := k.stopFor(e); err != nil {
			k.stopped.Store(true)
			return nil, err
		}
		switch e.Code() {
		case ck.ErrAllBrokersDown, ck.ErrTransport, ck.ErrResolve:
			if !k.joined.Load() {
				why := e.Error()
				k.unreachable.Store(&why)
			}
		}
		// Transient errors (broker down, all brokers down) are retried by
		// librdkafka itself, which reports them again every few
		// milliseconds: worth a line now and then, not a stop.
		if n, ok := k.limit.Allow(e.Code().String()); ok {
			k.log.Warn("kafka error", "code", e.Code().String(), "err", e.Error(), "suppressed", n)
		}
	case *ck.Stats:
		k.recordLag(e.String())
	case ck.OffsetsCommitted:
		if e.Error != nil && !isNoOffset(e.Error) {
			if n, ok := k.limit.Allow("commit"); ok {
				k.log.Warn("offset commit failed", "err", e.Error, "suppressed", n)
			}
		}
	}
	return nil, nil
}

// Readiness is "" once the group has given this consumer its assignment
// (possibly empty: a group with more members than partitions), else why not.
func (k *Consumer) Readiness() string {
	if k.joined.Load() {
		return ""
	}
	if why := k.unreachable.Load(); why != nil {
		return "cannot reach the Kafka brokers " + k.cfg.Brokers + ": " + *why
	}
	return "not yet a member of consumer group " + k.cfg.Group
}

// librdkafkaStats is the part of librdkafka's statistics JSON shovel reads.
type librdkafkaStats struct {
	Topics map[string]struct {
		Partitions map[string]struct {
			Partition   int32 `json:"partition"`
			ConsumerLag int64 `json:"consumer_lag"`
		} `json:"partitions"`
	} `json:"topics"`
}

func (k *Consumer) recordLag(js string) {
	if k.lag == nil {
		return
	}
	var st librdkafkaStats
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		k.log.Debug("librdkafka statistics", "err", err)
		return
	}
	// Under k.mu, so that statistics taken before a revocation cannot
	// bring back the series it deleted: only assigned partitions count.
	k.mu.Lock()
	defer k.mu.Unlock()
	for topic, t := range st.Topics {
		for _, p := range t.Partitions {
			if p.Partition < 0 || p.ConsumerLag < 0 { // -1: internal UA partition, or lag unknown
				continue
			}
			if _, assigned := k.trackers[key(topic, p.Partition)]; !assigned {
				continue
			}
			k.lag.WithLabelValues(topic, strconv.Itoa(int(p.Partition))).Set(float64(p.ConsumerLag))
		}
	}
}

func (k *Consumer) setPaused(paused bool) {
	k.mu.Lock()
	if k.paused == paused {
		k.mu.Unlock()
		return
	}
	k.paused = paused
	parts := append([]ck.TopicPartition(nil), k.assigned...)
	k.mu.Unlock()
	if len(parts) == 0 {
		return
	}
	var err error
	if paused {
		k.log.Warn("memory budget spent; pausing consumption", "partitions", fmtParts(parts),
			"used_bytes", k.budget.Used(), "budget_bytes", k.budget.Limit())
		err = k.c.Pause(parts)
	} else {
		// Partitions paused on their own stay paused until they catch up.
		k.mu.Lock()
		parts = parts[:0]
		for _, tp := range k.assigned {
			if p := k.parts[key(*tp.Topic, tp.Partition)]; p == nil || !p.paused {
				parts = append(parts, tp)
			}
		}
		k.mu.Unlock()
		k.log.Info("memory budget available again; resuming consumption", "partitions", fmtParts(parts))
		err = k.c.Resume(parts)
	}
	if err != nil {
		k.log.Warn("pause/resume", "paused", paused, "err", err)
	}
}

func convert(e *ck.Message) *metric.Message {
	m := &metric.Message{
		Topic:     *e.TopicPartition.Topic,
		Partition: e.TopicPartition.Partition,
		Offset:    int64(e.TopicPartition.Offset),
		Key:       e.Key,
		Value:     e.Value,
		Timestamp: e.Timestamp,
	}
	if len(e.Headers) > 0 {
		m.Headers = make([]metric.Header, len(e.Headers))
		for i, h := range e.Headers {
			m.Headers[i] = metric.Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

// Close stores and synchronously commits what was delivered, leaves the
// group and releases librdkafka. Call it after the router has flushed, so
// that the last acknowledgements are included.
func (k *Consumer) Close() error {
	if k.stopped.Load() {
		return k.abandon()
	}
	k.storeOffsets(true)
	var errs []error
	if _, err := k.c.Commit(); err != nil && !isNoOffset(err) {
		errs = append(errs, fmt.Errorf("kafka: final commit: %w", err))
	}
	if err := k.c.Close(); err != nil {
		errs = append(errs, fmt.Errorf("kafka: close: %w", err))
	}
	<-k.logsDone
	k.instance.release()
	return errors.Join(errs...)
}

// abandonWait bounds Close after a fatal error.
const abandonWait = 5 * time.Second

// abandon closes a consumer that stopped for an error no retry fixes.
// Nothing can be committed any more (a fenced member's commits are
// refused; its partitions' next owner starts from the last commit, which
// repeats at most what was delivered since), and librdkafka's close of a
// fenced member can wait for the group's session timeout: give it a few
// seconds, then leave it to the process's exit.
func (k *Consumer) abandon() error {
	closed := make(chan error, 1)
	go func() { closed <- k.c.Close() }()
	var err error
	select {
	case err = <-closed:
		<-k.logsDone
	case <-time.After(abandonWait):
		k.log.Warn("kafka: close after a fatal error did not finish; leaving it", "waited", abandonWait)
	}
	k.instance.release()
	if err != nil {
		return fmt.Errorf("kafka: close: %w", err)
	}
	return nil
}
