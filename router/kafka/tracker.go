package kafka

import (
	"sort"
	"sync"
)

// partTracker knows which offsets of one assigned partition have been
// delivered. Messages are handed to the router in offset order but may be
// acknowledged out of order (different routes go to different outputs), so
// the committable position is the end of the longest delivered prefix.
type partTracker struct {
	topic     string
	partition int32

	mu      sync.Mutex
	offsets []int64 // handed out, not yet part of the delivered prefix; ascending
	done    []bool  // parallel to offsets
	head    int     // offsets[:head] are delivered and dropped lazily
	next    int64   // offset to commit: one past the delivered prefix; -1 if none yet
	dirty   bool    // next moved since the last store
}

func newPartTracker(topic string, partition int32) *partTracker {
	return &partTracker{topic: topic, partition: partition, next: -1}
}

// add records that offset was handed to the router. Offsets are added in
// increasing order (Kafka delivers a partition in order).
func (t *partTracker) add(offset int64) {
	t.mu.Lock()
	t.offsets = append(t.offsets, offset)
	t.done = append(t.done, false)
	t.mu.Unlock()
}

// markDone records that offset was delivered to every output.
func (t *partTracker) markDone(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := t.offsets[t.head:]
	i := 0
	if len(live) == 0 || live[0] != offset { // the common case is in-order acknowledgement
		i = sort.Search(len(live), func(j int) bool { return live[j] >= offset })
		if i == len(live) || live[i] != offset {
			return // unknown offset: not ours (a stale acknowledgement after a rebalance)
		}
	}
	t.done[t.head+i] = true
	for t.head < len(t.offsets) && t.done[t.head] {
		t.next = t.offsets[t.head] + 1
		t.dirty = true
		t.head++
	}
	// Compact once the delivered prefix dominates, so memory follows the
	// number of in-flight messages rather than the partition's history.
	if t.head > 1024 && t.head*2 > len(t.offsets) {
		n := copy(t.offsets, t.offsets[t.head:])
		copy(t.done, t.done[t.head:])
		t.offsets, t.done, t.head = t.offsets[:n], t.done[:n], 0
	}
}

// take returns the offset to store if it moved since the last call.
func (t *partTracker) take() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.dirty {
		return 0, false
	}
	t.dirty = false
	return t.next, true
}

// inFlight is the number of messages handed out and not yet in the delivered prefix.
func (t *partTracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.offsets) - t.head
}
