package router

import (
	"sync"
	"time"
)

// rateLimiter lets one log line per key through per interval and counts
// the ones it held back, so a flood of bad messages costs a line every few
// seconds instead of one per message.
type rateLimiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*limitState
}

type limitState struct {
	last       time.Time
	suppressed int
}

func newRateLimiter(every time.Duration) *rateLimiter {
	return &rateLimiter{every: every, now: time.Now, keys: map[string]*limitState{}}
}

// allow reports whether a line for key may be logged now and, if so, how
// many were suppressed since the last one.
func (l *rateLimiter) allow(key string) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	st := l.keys[key]
	if st == nil {
		// Keys are decoder/reason pairs, a small fixed set, so the map stays small.
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
