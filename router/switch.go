package router

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Switch hands messages to the current router generation and replaces it
// on a configuration reload without losing or duplicating in-flight
// samples: the old generation keeps and delivers everything it took, and
// acknowledges it as usual; a message it had not fully taken when the
// switch happened is handed whole to the new one.
type Switch struct {
	cur atomic.Pointer[Router]
	// mu is held for reading by Handle, for writing by Swap: once Swap holds
	// it, no Handle call is still inside the old router.
	mu sync.RWMutex

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
		s.mu.RLock()
		err := s.cur.Load().Handle(ctx, msg, done)
		s.mu.RUnlock()
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
// old one: it stops taking messages and drains in the background until it
// has delivered everything, or until Close.
func (s *Switch) Swap(next *Router) {
	old := s.cur.Swap(next)
	old.Abort()
	s.mu.Lock() // wait for a Handle still inside old
	s.mu.Unlock()
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
