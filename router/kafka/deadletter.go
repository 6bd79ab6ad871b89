package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shovel-metrics/shovel/router/internal/ratelimit"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Dead-letter headers: why a message was rejected, where it came from, when.
const (
	HeaderReason    = metric.HeaderDeadLetterReason
	HeaderDetail    = "shovel.detail"
	HeaderTopic     = "shovel.source.topic"
	HeaderPartition = "shovel.source.partition"
	HeaderOffset    = "shovel.source.offset"
	HeaderTime      = "shovel.rejected.at"
	// HeaderTruncated is set on a dead letter that carries only shovel's
	// headers: the message's value, key and headers could not be produced
	// (too large for the producer or the topic). Its value is the size in
	// bytes of what was left out; the source offset locates the original.
	HeaderTruncated = "shovel.truncated"
)

// Defaults of DeadLetterConfig.
const (
	// DefaultMaxRecordBytes is the producer's record limit when the config
	// gives none: librdkafka's own default.
	DefaultMaxRecordBytes = 1_000_000
	// HeadersAllowance is what DeadLetterRecordLimit adds to the largest
	// value a decoder accepts for the key and the message's own headers.
	// Metrics messages carry a few short headers; more is hostile, and is
	// dead-lettered truncated rather than making every letter's limit
	// unbounded.
	HeadersAllowance = 64 << 10
	// shovelHeadersReserve bounds shovel's own headers: the detail is cut
	// at 256 bytes and a topic name at 249.
	shovelHeadersReserve = 1 << 10
	// maxProducerRecord is librdkafka's ceiling for message.max.bytes.
	maxProducerRecord = 1_000_000_000
	// DefaultUnreadyAfter is how long dead letters may wait before the
	// writer reports itself not ready.
	DefaultUnreadyAfter = 30 * time.Second
	// metadataTimeout bounds the start-up check of the topic.
	metadataTimeout = 10 * time.Second
)

// DeadLetterRecordLimit is the producer record limit (librdkafka's
// message.max.bytes) for a consumer whose decoders accept values of up to
// largestValue bytes: the value, the allowance for key and headers, and
// room for shovel's own headers.
func DeadLetterRecordLimit(largestValue int) int {
	return min(max(largestValue+HeadersAllowance+shovelHeadersReserve, DefaultMaxRecordBytes), maxProducerRecord)
}

// DeadLetterConfig says where rejected messages go.
type DeadLetterConfig struct {
	Brokers string
	Topic   string
	// Settings are librdkafka producer properties. Security settings
	// (security.*, sasl.*, ssl.*) of the consumer apply unless overridden
	// here, so the dead-letter topic lives on the same cluster, reached the
	// same way.
	Settings map[string]any
	// MaxRecordBytes is the largest dead letter produced whole (key, value
	// and every header counted, as librdkafka counts them); a larger one is
	// sent truncated. It sets message.max.bytes unless Settings does, in
	// which case Settings wins. 0 means DefaultMaxRecordBytes.
	MaxRecordBytes int
	// UnreadyAfter is how long a dead letter may wait for delivery before
	// Readiness reports the writer not ready; 0 means DefaultUnreadyAfter.
	UnreadyAfter time.Duration
	// Registerer receives the writer's counters; nil for none.
	Registerer prometheus.Registerer
}

// InheritSecurity returns the consumer settings the dead-letter producer shares.
func InheritSecurity(consumer map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range consumer {
		if strings.HasPrefix(k, "security.") || strings.HasPrefix(k, "sasl.") || strings.HasPrefix(k, "ssl.") {
			out[k] = v
		}
	}
	return out
}

// DeadLetterWriter produces rejected messages, unchanged, to a topic with
// headers that say why. The source message is acknowledged only when the
// broker has the dead letter, or when shovel has given up on it for a
// reason that no retry can change:
//
//   - a letter too large for the producer (MaxRecordBytes) or refused by
//     the broker for good (too large for the topic, invalid or unknown
//     topic, not authorised) is sent again truncated: shovel's headers and
//     HeaderTruncated, no key, value or original headers;
//   - a truncated letter that still fails for good is counted as dropped
//     and its source acknowledged: retrying would stall the partition
//     forever.
//
// A transient failure (queue full, broker away, timeout) is retried with a
// growing pause: nothing is lost, and only the partitions that wait for
// letters wait.
//
// The producer is idempotent (acks=all, enable.idempotence): librdkafka's
// retries neither duplicate nor reorder letters. Letters produced again
// (truncated, or after librdkafka gave one back) are produced one at a
// time in the order their delivery reports came, so they keep their order
// among themselves.
type DeadLetterWriter struct {
	p            *ck.Producer
	topic        string
	maxRecord    int
	unreadyAfter time.Duration
	log          *slog.Logger
	limit        *ratelimit.Limiter
	now          func() time.Time
	m            deadLetterMetrics

	mu        sync.Mutex
	inflight  int       // letters handed to Send and not yet delivered or dropped
	progress  time.Time // last delivery, drop, or the moment inflight left zero
	lastErr   string    // the last failure, for Readiness
	dropping  bool      // the last letter resolved was dropped
	closing   bool
	resend    []resend       // letters to produce again, in the order of their reports
	wake      chan struct{}  // a letter was queued in resend
	retries   sync.WaitGroup // the resender
	closeOnce sync.Once

	wg       sync.WaitGroup // reports
	logsDone chan struct{}
	closed   chan struct{}
}

type deadLetterMetrics struct {
	delivered, truncated, dropped, retries prometheus.Counter
}

func newDeadLetterMetrics(reg prometheus.Registerer) (deadLetterMetrics, error) {
	m := deadLetterMetrics{
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "shovel_dead_letters_delivered_total",
			Help: "Dead letters the broker acknowledged, whole or truncated."}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{Name: "shovel_dead_letters_truncated_total",
			Help: "Dead letters delivered truncated (shovel's headers only), because the whole message could not be produced."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "shovel_dead_letters_dropped_total",
			Help: "Dead letters given up on for a permanent reason, even truncated; their source messages are acknowledged."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "shovel_dead_letter_retries_total",
			Help: "Dead-letter produce attempts repeated after a transient failure."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.delivered, m.truncated, m.dropped, m.retries} {
			if err := reg.Register(c); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}

// NewDeadLetter creates the producer and checks, with a metadata request
// bounded by a timeout, that the topic exists: a missing dead-letter topic
// would otherwise be noticed only at the first rejection.
func NewDeadLetter(ctx context.Context, cfg DeadLetterConfig, log *slog.Logger) (*DeadLetterWriter, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxRecord := cfg.MaxRecordBytes
	if maxRecord <= 0 {
		maxRecord = DefaultMaxRecordBytes
	}
	if v, ok := cfg.Settings["message.max.bytes"]; ok {
		n, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("dead letter: message.max.bytes: %v is not a positive number", v)
		}
		maxRecord = n
	}
	cm := ck.ConfigMap{
		"acks":                   "all",
		"enable.idempotence":     true,
		"linger.ms":              20,
		"go.logs.channel.enable": true,
		// The topic must exist (checked here): a typo must not create one.
		"allow.auto.create.topics": false,
		"message.max.bytes":        maxRecord,
		// Dead letters wait here for the broker; bound them in bytes: a few
		// of the largest, never librdkafka's default of 1 GiB.
		"queue.buffering.max.kbytes": max(4*maxRecord/1024, 16<<10),
	}
	for k, v := range cfg.Settings {
		cm[k] = v
	}
	cm["bootstrap.servers"] = cfg.Brokers
	m, err := newDeadLetterMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("dead letter: metrics: %w", err)
	}
	p, err := ck.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("dead letter: create producer for %s: %w", cfg.Brokers, err)
	}
	unready := cfg.UnreadyAfter
	if unready <= 0 {
		unready = DefaultUnreadyAfter
	}
	d := &DeadLetterWriter{p: p, topic: cfg.Topic, maxRecord: maxRecord, unreadyAfter: unready,
		log: log, limit: ratelimit.New(10 * time.Second), now: time.Now, m: m,
		logsDone: make(chan struct{}), closed: make(chan struct{}), wake: make(chan struct{}, 1)}
	go forwardLogsLimited(p.Logs(), log, d.logsDone, d.limit)
	d.retries.Add(1)
	go d.resender()
	d.wg.Add(1)
	go d.reports()
	if err := d.checkTopic(ctx); err != nil {
		_ = d.Close(0)
		return nil, err
	}
	// An idempotent producer refused a producer id (not authorised) may
	// have failed already; later, it is reported and its letters dropped.
	if err := d.p.GetFatalError(); err != nil {
		_ = d.Close(0)
		return nil, fmt.Errorf("dead letter: producer for %s failed: %w (or set enable.idempotence: false in dead_letter.settings)", cfg.Brokers, err)
	}
	return d, nil
}

// checkTopic asks the brokers for the topic's metadata.
func (d *DeadLetterWriter) checkTopic(ctx context.Context) error {
	timeout := metadataTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	topic := d.topic
	md, err := d.p.GetMetadata(&topic, false, max(int(timeout/time.Millisecond), 1))
	if err != nil {
		return fmt.Errorf("dead letter: topic %q: metadata request: %w", d.topic, err)
	}
	t, ok := md.Topics[d.topic]
	switch {
	case !ok, t.Error.Code() == ck.ErrUnknownTopicOrPart, t.Error.Code() == ck.ErrUnknownTopic:
		return fmt.Errorf("dead letter: topic %q does not exist (create it, or fix dead_letter.topic)", d.topic)
	case t.Error.Code() != ck.ErrNoError:
		return fmt.Errorf("dead letter: topic %q: %w", d.topic, t.Error)
	case len(t.Partitions) == 0:
		return fmt.Errorf("dead letter: topic %q has no partitions", d.topic)
	}
	return nil
}

// letter is one dead letter on its way, the opaque of its produced message.
// Its km shares the source message's key, value and headers (librdkafka
// copies them at each Produce): a retry produces them again, so the source
// message must stay untouched until done is called.
type letter struct {
	km        *ck.Message
	src       *metric.Message
	size      int // of the whole letter, as librdkafka counts it
	truncated bool
	attempts  int // transient failures so far, for the pause
	done      func()
}

// Send produces msg to the dead-letter topic. It blocks while librdkafka's
// queue is full (or the producer fails transiently), and fails only when
// ctx ends first. done is called once the letter is delivered, whole or
// truncated, or given up on for a permanent reason.
func (d *DeadLetterWriter) Send(ctx context.Context, msg *metric.Message, reason, detail string, done func()) error {
	if len(detail) > 256 {
		detail = strings.ToValidUTF8(detail[:256], "")
	}
	shovel := []ck.Header{
		{Key: HeaderReason, Value: []byte(reason)},
		{Key: HeaderDetail, Value: []byte(detail)},
		{Key: HeaderTopic, Value: []byte(msg.Topic)},
		{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(msg.Partition)))},
		{Key: HeaderOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		{Key: HeaderTime, Value: []byte(d.now().UTC().Format(time.RFC3339Nano))},
	}
	headers := make([]ck.Header, 0, len(msg.Headers)+len(shovel))
	size := len(msg.Key) + len(msg.Value)
	for _, h := range msg.Headers {
		headers = append(headers, ck.Header{Key: h.Key, Value: h.Value})
		size += headerSize(h.Key, h.Value)
	}
	for _, h := range shovel {
		size += headerSize(h.Key, h.Value)
	}
	headers = append(headers, shovel...)
	topic := d.topic
	l := &letter{src: msg, size: size, done: done, km: &ck.Message{
		TopicPartition: ck.TopicPartition{Topic: &topic, Partition: ck.PartitionAny},
		Key:            msg.Key,
		Value:          msg.Value,
		Headers:        headers,
	}}
	l.km.Opaque = l
	d.mu.Lock()
	if d.inflight == 0 {
		d.progress = d.now()
	}
	d.inflight++
	d.mu.Unlock()
	if size > d.maxRecord {
		d.truncate(l, fmt.Sprintf("%d bytes with headers, producer limit %d", size, d.maxRecord))
	}
	err := d.produce(ctx, l)
	if err != nil {
		d.mu.Lock()
		d.inflight--
		d.mu.Unlock()
	}
	return err
}

// headerSize is a header's size in a record, as librdkafka counts it
// against message.max.bytes: key, value and their two length varints
// (at most 5 bytes each).
func headerSize(key string, value []byte) int { return len(key) + len(value) + 10 }

// truncate replaces l's message with shovel's headers only.
func (d *DeadLetterWriter) truncate(l *letter, why string) {
	d.warn("truncated", "dead letter too large or refused for good: sending it truncated (shovel's headers only)",
		"topic", d.topic, "source_topic", l.src.Topic, "partition", l.src.Partition, "offset", l.src.Offset, "why", why)
	// Send appends shovel's six headers last.
	headers := l.km.Headers[len(l.km.Headers)-6:]
	headers = append(headers[:6:6], ck.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(l.size))})
	l.km.Key, l.km.Value, l.km.Headers = nil, nil, headers
	l.km.TopicPartition.Partition = ck.PartitionAny
	l.truncated = true
}

// permanent reports whether err means the letter as it is can never be
// produced to this topic, whatever the number of retries.
func permanent(err error) bool {
	var kerr ck.Error
	if !errors.As(err, &kerr) {
		return false
	}
	switch kerr.Code() {
	case ck.ErrMsgSizeTooLarge, ck.ErrInvalidMsgSize, ck.ErrRecordListTooLarge, ck.ErrInvalidRecord,
		ck.ErrTopicException, ck.ErrInvalidArg,
		ck.ErrUnknownTopicOrPart, ck.ErrUnknownTopic, ck.ErrUnknownPartition,
		ck.ErrTopicAuthorizationFailed, ck.ErrPolicyViolation:
		return true
	}
	return kerr.IsFatal()
}

// failedForGood reports whether the producer itself can produce nothing
// any more: an idempotent producer raises a fatal error when it cannot
// keep its guarantees (the broker lost track of its sequence numbers, or
// refuses it a producer id), and then fails every letter, queued (purged)
// or new. Letters are dropped, not retried: a retry would fail the same
// way forever and stall its partition.
func (d *DeadLetterWriter) failedForGood(err error) bool {
	var kerr ck.Error
	if errors.As(err, &kerr) && (kerr.Code() == ck.ErrFatal || kerr.IsFatal()) {
		return true
	}
	return d.p.GetFatalError() != nil
}

// fatalError is the producer's fatal error, which says why, else err.
func (d *DeadLetterWriter) fatalError(err error) error {
	if fatal := d.p.GetFatalError(); fatal != nil {
		return fatal
	}
	return err
}

// backoff is the pause before a letter's next attempt after n transient failures.
func backoff(n int) time.Duration {
	return min(100*time.Millisecond<<min(n, 6), 5*time.Second)
}

// produce hands l to librdkafka, waiting while it cannot take it. A
// permanent refusal truncates l, and drops it once truncated.
func (d *DeadLetterWriter) produce(ctx context.Context, l *letter) error {
	for {
		err := d.produceOnce(l)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errClosed):
			return err
		case d.failedForGood(err):
			d.drop(l, d.fatalError(err), dropFatal)
			return nil
		case permanent(err) && !l.truncated:
			d.truncate(l, err.Error())
			continue
		case permanent(err):
			d.drop(l, err, dropRefused)
			return nil
		}
		// A full queue empties as the broker takes letters: wait a little.
		// Anything else is a transient failure: wait longer each time.
		pause := queueFullPause
		var kerr ck.Error
		if !errors.As(err, &kerr) || kerr.Code() != ck.ErrQueueFull {
			pause = backoff(l.attempts)
			l.attempts++
			d.fail(err)
			d.m.retries.Inc()
			d.warn("produce", "dead letter: produce failed; retrying", "topic", d.topic, "err", err, "retry_in", pause)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.closed:
			return errClosed
		case <-time.After(pause):
		}
	}
}

var errClosed = errors.New("dead letter: closed")

// queueFullPause is how long produce waits for room in librdkafka's queue.
const queueFullPause = 20 * time.Millisecond

// produceOnce calls Produce unless Close has begun (the handle is freed then).
func (d *DeadLetterWriter) produceOnce(l *letter) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return errClosed
	}
	return d.p.Produce(l.km, nil)
}

// reports acknowledges delivered dead letters and deals with failed ones.
func (d *DeadLetterWriter) reports() {
	defer d.wg.Done()
	for ev := range d.p.Events() {
		m, ok := ev.(*ck.Message)
		if !ok {
			if e, isErr := ev.(ck.Error); isErr && e.IsFatal() {
				d.log.Error("dead letter: the producer failed for good: every dead letter is dropped until shovel is restarted", "topic", d.topic, "err", e)
			} else if isErr {
				d.warn("client:"+e.Code().String(), "dead letter: kafka error", "err", e)
			}
			continue
		}
		l, _ := m.Opaque.(*letter)
		if l == nil {
			continue
		}
		err := m.TopicPartition.Error
		switch {
		case err == nil:
			d.deliver(l)
		case d.failedForGood(err):
			d.drop(l, d.fatalError(err), dropFatal)
		case permanent(err) && !l.truncated:
			d.truncate(l, err.Error())
			d.again(l, 0)
		case permanent(err):
			d.drop(l, err, dropRefused)
		default:
			pause := backoff(l.attempts)
			l.attempts++ // before again: l belongs to its goroutine from then on
			d.fail(err)
			d.m.retries.Inc()
			d.warn("delivery", "dead letter: delivery failed; producing again", "topic", d.topic, "err", err, "retry_in", pause)
			d.again(l, pause)
		}
	}
}

// again queues l to be produced anew after pause, behind the letters
// queued before it: reports come in the order the letters were produced,
// so dead letters sent again (truncated ones above all) keep that order,
// which an idempotent producer promises. The resender produces them, off
// the reports loop: produce may wait for room in the queue, which only
// the reports loop makes.
func (d *DeadLetterWriter) again(l *letter, pause time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return // the source stays unacknowledged: delivered again after a restart
	}
	d.resend = append(d.resend, resend{l: l, at: time.Now().Add(pause)})
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// resend is a letter waiting in DeadLetterWriter.resend.
type resend struct {
	l  *letter
	at time.Time // not before
}

// resender produces the queued letters one at a time, in order: a letter
// waits for the one before it, so a pause delays those behind it too.
// There are at most as many as letters in flight, which librdkafka's
// queue bounds.
func (d *DeadLetterWriter) resender() {
	defer d.retries.Done()
	for {
		d.mu.Lock()
		var next resend
		queued := len(d.resend) > 0
		if queued {
			next = d.resend[0]
		}
		d.mu.Unlock()
		if !queued {
			select {
			case <-d.closed:
				return
			case <-d.wake:
			}
			continue
		}
		if wait := time.Until(next.at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-d.closed:
				t.Stop()
				return
			case <-t.C:
			}
		}
		d.mu.Lock()
		d.resend[0] = resend{}
		d.resend = d.resend[1:]
		d.mu.Unlock()
		next.l.km.TopicPartition.Partition = ck.PartitionAny
		if errors.Is(d.produce(context.Background(), next.l), errClosed) { // else delivered, dropped or on its way
			return
		}
	}
}

func (d *DeadLetterWriter) deliver(l *letter) {
	d.m.delivered.Inc()
	if l.truncated {
		d.m.truncated.Inc()
	}
	d.mu.Lock()
	d.inflight--
	d.progress, d.dropping, d.lastErr = d.now(), false, ""
	d.mu.Unlock()
	l.done()
}

// Why drop gives up on a letter, as logged.
const (
	dropRefused = "dead letter dropped: even truncated it cannot be produced; the source message is skipped"
	dropFatal   = "dead letter dropped: the producer failed for good (restart shovel); the source message is skipped"
)

// drop gives up on l for good and acknowledges its source.
func (d *DeadLetterWriter) drop(l *letter, err error, why string) {
	d.m.dropped.Inc()
	d.mu.Lock()
	d.inflight--
	d.progress, d.dropping, d.lastErr = d.now(), true, err.Error()
	d.mu.Unlock()
	d.warn("dropped", why, "topic", d.topic, "source_topic", l.src.Topic, "partition", l.src.Partition, "offset", l.src.Offset, "err", err)
	l.done()
}

func (d *DeadLetterWriter) fail(err error) {
	d.mu.Lock()
	d.lastErr = err.Error()
	d.mu.Unlock()
}

// warn logs at most one line per kind every 10 s, with the count of the
// lines held back.
func (d *DeadLetterWriter) warn(kind, msg string, attrs ...any) {
	n, ok := d.limit.Allow(kind)
	if !ok {
		return
	}
	if n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	d.log.Warn(msg, attrs...)
}

// Readiness is "" while dead letters get delivered, else why not: a
// letter was dropped less than UnreadyAfter ago with none delivered since
// (the topic refuses even truncated letters), or letters have waited
// longer than UnreadyAfter with nothing delivered.
func (d *DeadLetterWriter) Readiness() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.dropping && d.now().Sub(d.progress) < d.unreadyAfter:
		return fmt.Sprintf("dead letters to %s are being dropped: %s", d.topic, d.lastErr)
	case d.inflight > 0 && d.now().Sub(d.progress) > d.unreadyAfter:
		why := fmt.Sprintf("%d dead letters to %s waiting, none delivered for %s", d.inflight, d.topic,
			d.now().Sub(d.progress).Truncate(time.Second))
		if d.lastErr != "" {
			why += ": " + d.lastErr
		}
		return why
	}
	return ""
}

// Close waits up to timeout for outstanding dead letters, then releases the
// producer. Letters not delivered by then leave their source messages
// unacknowledged, so they are handled again after a restart.
func (d *DeadLetterWriter) Close(timeout time.Duration) error {
	var remaining int
	d.closeOnce.Do(func() {
		remaining = d.p.Flush(max(int(timeout/time.Millisecond), 0))
		d.mu.Lock()
		d.closing = true
		remaining = max(remaining, d.inflight)
		d.mu.Unlock()
		close(d.closed)
		d.retries.Wait()
		d.p.Close()
		d.wg.Wait()
		<-d.logsDone
	})
	if remaining > 0 {
		return fmt.Errorf("dead letter: %d messages not delivered before shutdown", remaining)
	}
	return nil
}
