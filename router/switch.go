package router

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Switch hands messages to the current router generation and replaces it
// on a configuration reload without losing or duplicating in-flight
// samples: the old generation keeps and delivers everything it took, and
// acknowledges it as usual; a message it had not fully taken when the
// switch happened is handed whole to the new one.
type Switch struct {
	cur atomic.Pointer[Router]

	retiring sync.WaitGroup
	cancelMu sync.Mutex
	cancels  []context.CancelFunc
}

// NewSwitch starts with r, which must already be started.
func NewSwitch(r *Router) *Switch {
	s := &Switch{}
	s.cur.Store(r)
	return s
}

// Current is the router messages go to now.
func (s *Switch) Current() *Router { return s.cur.Load() }

// Handle is Router.Handle on the current generation.
func (s *Switch) Handle(ctx context.Context, msg *metric.Message, done func()) error {
	for {
		// Counted in before the abort check, so that Swap, which aborts
		// first and then waits for the count to drop, never misses a call.
		// (Not a lock: a call blocked in the new generation, whose queue
		// may be full at once when it shares the old one's cap, must not
		// hold up the next Swap.)
		r := s.cur.Load()
		r.inflight.Add(1)
		if r.isAborted() {
			r.inflight.Add(-1)
			continue // Swap stored the next generation before aborting this one
		}
		err := r.Handle(ctx, msg, done)
		r.inflight.Add(-1)
		if !errors.Is(err, ErrAborted) {
			return err
		}
		// The generation was replaced while this message waited for one of
		// its queues. Some of its outputs may already have its samples; the
		// old generation delivers those but never acknowledges the message,
		// and the new one delivers it whole (Carbon overwrites duplicates).
	}
}

// Swap makes next (already started) the current generation and retires the
// old one: it stops taking messages, hands what it holds for an output to
// next's output of the same name (when next shares its memory budget), and
// drains the rest in the background until it has delivered everything, or
// until Close. So a reload storm while an output is down keeps one queue
// and one retry loop per output, not one per generation.
func (s *Switch) Swap(next *Router) {
	old := s.cur.Swap(next)
	old.Abort()
	for old.inflight.Load() > 0 { // a Handle still inside old returns soon: it was aborted
		time.Sleep(time.Millisecond)
	}
	old.handOver(next)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancelMu.Lock()
	s.cancels = append(s.cancels, cancel)
	s.cancelMu.Unlock()
	s.retiring.Add(1)
	go func() {
		defer s.retiring.Done()
		_ = old.Close(ctx)
	}()
}

// Close closes the current generation and gives retiring ones until ctx
// ends to finish delivering.
func (s *Switch) Close(ctx context.Context) error {
	err := s.cur.Load().Close(ctx)
	finished := make(chan struct{})
	go func() { s.retiring.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		s.cancelMu.Lock()
		for _, c := range s.cancels {
			c()
		}
		s.cancelMu.Unlock()
		<-finished
	}
	return err
}
