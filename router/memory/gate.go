package memory

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Gate bounds the bytes waiting in one queue (an output's). It is shared
// by name across router generations (see Budget.Gate), so that an output's
// queue in a retiring generation and its successor's together stay within
// one cap.
type Gate struct {
	limit atomic.Int64
	used  atomic.Int64

	hasWaiters atomic.Bool
	mu         sync.Mutex
	wait       chan struct{} // closed by Release when a waiter may go on

	depthMu sync.Mutex
	depths  map[*func() int]struct{} // queue lengths of the live generations
}

// ErrAborted is what Acquire returns when its abort channel closes first.
var ErrAborted = errors.New("memory: aborted")

// SetLimit changes the cap; a reload may change it.
func (g *Gate) SetLimit(n int64) { g.limit.Store(n) }

// Limit is the cap in bytes.
func (g *Gate) Limit() int64 { return g.limit.Load() }

// Used is what the queue holds now.
func (g *Gate) Used() int64 { return g.used.Load() }

// Acquire takes n bytes, waiting while the queue is at its cap. An empty
// queue takes anything, so that one delivery larger than the cap cannot
// stall; so the queue holds at most its cap plus one delivery. It returns
// ctx's error, or ErrAborted once abort is closed, if either comes first.
func (g *Gate) Acquire(ctx context.Context, abort <-chan struct{}, n int64) error {
	if g.try(n) {
		return nil
	}
	for {
		g.mu.Lock()
		g.hasWaiters.Store(true)
		if g.wait == nil {
			g.wait = make(chan struct{})
		}
		w := g.wait
		ok := g.try(n)
		g.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		case <-abort:
			return ErrAborted
		}
	}
}

// try adds n if the queue was under its cap (or empty) before.
func (g *Gate) try(n int64) bool {
	after := g.used.Add(n)
	if before := after - n; before < g.limit.Load() || before == 0 {
		return true
	}
	g.used.Add(-n)
	return false
}

// Release gives back n bytes taken by Acquire.
func (g *Gate) Release(n int64) {
	g.used.Add(-n)
	if g.hasWaiters.Load() {
		g.mu.Lock()
		if g.wait != nil {
			close(g.wait)
			g.wait = nil
		}
		g.hasWaiters.Store(false)
		g.mu.Unlock()
	}
}

// Track adds a generation's queue length to Depth until the returned
// func is called.
func (g *Gate) Track(depth func() int) (untrack func()) {
	g.depthMu.Lock()
	defer g.depthMu.Unlock()
	if g.depths == nil {
		g.depths = map[*func() int]struct{}{}
	}
	p := &depth
	g.depths[p] = struct{}{}
	return func() {
		g.depthMu.Lock()
		delete(g.depths, p)
		g.depthMu.Unlock()
	}
}

// Depth is the number of deliveries queued in every live generation.
func (g *Gate) Depth() int {
	g.depthMu.Lock()
	defer g.depthMu.Unlock()
	n := 0
	for d := range g.depths {
		n += (*d)()
	}
	return n
}

// Gate returns the gate for the queue called name, the same one every time.
func (b *Budget) Gate(name string) *Gate {
	b.gatesMu.Lock()
	defer b.gatesMu.Unlock()
	if b.gates == nil {
		b.gates = map[string]*Gate{}
	}
	g, ok := b.gates[name]
	if !ok {
		g = &Gate{}
		b.gates[name] = g
	}
	return g
}
