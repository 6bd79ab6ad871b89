// Package ratelimit paces repetitive log lines: one per key per interval,
// with a count of the ones held back, so that a flood of bad messages or a
// broker that stays down costs a line every few seconds, not thousands.
package ratelimit

import (
	"sync"
	"time"
)

// Limiter lets one log line per key through per interval and counts the
// ones it held back. It is safe for concurrent use.
type Limiter struct {
	every time.Duration
	// Now is the clock; tests replace it.
	Now func() time.Time

	mu   sync.Mutex
	keys map[string]*limitState
}

type limitState struct {
	last       time.Time
	suppressed int
}

// New returns a Limiter that lets one line per key through per every.
func New(every time.Duration) *Limiter {
	return &Limiter{every: every, Now: time.Now, keys: map[string]*limitState{}}
}

// Allow reports whether a line for key may be logged now and, if so, how
// many were held back since the last one. Keys should come from a small
// fixed set (reasons, error codes): the map keeps one entry per key.
func (l *Limiter) Allow(key string) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Now()
	st := l.keys[key]
	if st == nil {
		l.keys[key] = &limitState{last: now}
		return 0, true
	}
	if now.Sub(st.last) < l.every {
		st.suppressed++
		return 0, false
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return n, true
}
