package router

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Stats counts what the router did. Counters only grow; Snapshot reads them.
type Stats struct {
	messages    atomic.Uint64
	samplesIn   atomic.Uint64
	samplesOut  atomic.Uint64
	batches     atomic.Uint64
	writeFails  atomic.Uint64
	fallbacks   atomic.Uint64
	deadLetters atomic.Uint64

	mu      sync.Mutex
	rejects map[RejectKey]uint64
}

// RejectKey labels a rejection counter.
type RejectKey struct {
	Decoder string
	Reason  string
	// Sample is true for a single dropped sample, false for a whole message.
	Sample bool
}

func newStats() *Stats { return &Stats{rejects: map[RejectKey]uint64{}} }

func (s *Stats) rejectMessage(decoder, reason string) { s.addReject(RejectKey{decoder, reason, false}) }
func (s *Stats) rejectSample(decoder, reason string)  { s.addReject(RejectKey{decoder, reason, true}) }

func (s *Stats) addReject(k RejectKey) {
	s.mu.Lock()
	s.rejects[k]++
	s.mu.Unlock()
}

// Snapshot is a point-in-time copy of the counters.
type Snapshot struct {
	Messages    uint64 // messages handled
	SamplesIn   uint64 // samples accepted for delivery
	SamplesOut  uint64 // samples written by an output (primary or fallback)
	Batches     uint64 // successful writes
	WriteFails  uint64 // failed write attempts
	Fallbacks   uint64 // batches written by a fallback output
	DeadLetters uint64 // messages sent to the dead-letter topic
	Rejects     map[RejectKey]uint64
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() Snapshot {
	s.mu.Lock()
	rej := make(map[RejectKey]uint64, len(s.rejects))
	for k, v := range s.rejects {
		rej[k] = v
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
		Rejects:     rej,
	}
}

// RejectReasons returns "decoder/reason" keys with counts, sorted, for logs and tests.
func (sn Snapshot) RejectReasons() []string {
	var out []string
	for k := range sn.Rejects {
		out = append(out, k.Decoder+"/"+k.Reason)
	}
	sort.Strings(out)
	return out
}
