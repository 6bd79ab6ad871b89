// Package memory is shovel's one memory budget: every byte the router and
// the Kafka consumer hold on behalf of a message is charged here, by
// component, and consumption pauses when the charges reach the limit. One
// Budget outlives configuration reloads, so that retiring router
// generations and the current one share it.
package memory

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Component is what a charge is held for.
type Component int

// The components, each a label value of shovel_memory_used_bytes.
const (
	// Messages: polled Kafka messages (value, key, headers, the struct)
	// from the poll until the router has decoded and queued them.
	Messages Component = iota
	// Samples: decoded samples and their paths, from the decode until
	// every output they go to has taken them.
	Samples
	// DeadLetters: messages handed to the dead-letter producer, until
	// the broker has them.
	DeadLetters
	numComponents
)

var componentNames = [numComponents]string{"messages", "samples", "dead_letters"}

func (c Component) String() string { return componentNames[c] }

// DefaultLimit is the budget when the configuration sets none. At full
// rate shovel holds about a flush interval of samples (200 ms at a
// million samples a second is some 16 MiB) plus the messages being
// decoded; 64 MiB is four times that, and with librdkafka's prefetch
// (queued.max.messages.kbytes, 4 MiB by default) and the Go runtime's
// own overhead it keeps the whole process well under 256 MiB.
const DefaultLimit = 64 << 20

// SoftLimit is the Go runtime memory limit (debug.SetMemoryLimit) shovel
// sets for a budget when GOMEMLIMIT is not set: room for a live heap as
// large as the budget, half as much again for garbage between
// collections, and 32 MiB for the runtime, the status endpoints and the
// outputs' buffers. It is soft: the collector works harder near it (only
// while the budget is nearly spent), it never fails an allocation.
func SoftLimit(budget int64) int64 { return budget + budget/2 + 32<<20 }

// MinLimit is the smallest budget accepted: below it a single large
// message would hold everything up.
const MinLimit = 4 << 20

// Budget counts bytes held, by component, against one limit. Charges are
// single atomic adds; reading the total sums the components.
type Budget struct {
	limit int64
	used  [numComponents]paddedInt
	peak  atomic.Int64

	gatesMu sync.Mutex
	gates   map[string]*Gate
}

// paddedInt keeps each component's counter on its own cache line: the
// poll loop, the partitions' goroutines and the sinks charge different ones.
type paddedInt struct {
	atomic.Int64
	_ [56]byte
}

// New returns a budget of limit bytes (DefaultLimit when limit <= 0).
func New(limit int64) *Budget {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Budget{limit: limit}
}

// Limit is the budget in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Used is the total charged now.
func (b *Budget) Used() int64 {
	var n int64
	for i := range b.used {
		n += b.used[i].Load()
	}
	return n
}

// UsedBy is what component c holds now.
func (b *Budget) UsedBy(c Component) int64 { return b.used[c].Load() }

// Peak is the highest total seen since New, as sampled by NotePeak (the
// Kafka consumer calls it every 50 ms) and by Peak itself.
func (b *Budget) Peak() int64 { return b.NotePeak() }

// NotePeak records the current total if it is a new high, and returns the
// high. Charge does not, to keep the per-message path to one atomic add.
func (b *Budget) NotePeak() int64 {
	t := b.Used()
	for {
		p := b.peak.Load()
		if t <= p {
			return p
		}
		if b.peak.CompareAndSwap(p, t) {
			return t
		}
	}
}

// Over reports whether the charges have reached the limit.
func (b *Budget) Over() bool { return b.Used() >= b.limit }

// Charge adds n bytes to component c; Release takes them back.
func (b *Budget) Charge(c Component, n int64) { b.used[c].Add(n) }

// Release returns n bytes charged to c.
func (b *Budget) Release(c Component, n int64) { b.used[c].Add(-n) }

// Register exposes shovel_memory_budget_bytes, shovel_memory_used_bytes by
// component and shovel_memory_used_peak_bytes.
func (b *Budget) Register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shovel_memory_budget_bytes",
			Help: "The memory budget (limits.memory): consumption pauses when the bytes held reach it."},
			func() float64 { return float64(b.limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shovel_memory_used_peak_bytes",
			Help: "The highest total of bytes held against the memory budget since start (sampled every 50 ms)."},
			func() float64 { return float64(b.Peak()) }),
	}
	for c := range numComponents {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shovel_memory_used_bytes",
			Help:        "Bytes held against the memory budget, by component.",
			ConstLabels: prometheus.Labels{"component": c.String()}},
			func() float64 { return float64(b.UsedBy(c)) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Overheads of a message beyond its bytes, for MessageCost. A header costs
// its metric.Header, the client library's own header struct it was copied
// from, and two small allocations (key and value) of at least 8 bytes each.
const (
	messageOverhead = int64(unsafe.Sizeof(metric.Message{})) + 64
	headerOverhead  = 2*int64(unsafe.Sizeof(metric.Header{})) + 16
)

// MessageCost is what msg is charged while it is held: its bytes and the
// memory around them.
func MessageCost(msg *metric.Message) int64 {
	n := messageOverhead + int64(len(msg.Topic)+len(msg.Key)+len(msg.Value))
	for i := range msg.Headers {
		n += headerOverhead + int64(len(msg.Headers[i].Key)+len(msg.Headers[i].Value))
	}
	return n
}
