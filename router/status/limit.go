package status

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter is a listener that keeps at most max connections open. When
// a connection arrives at the cap, it closes the connection that has
// waited longest without a request in progress (idle between keep-alive
// requests, or new and not yet sending) and waits for its slot, so that a
// pile of idle or silent connections cannot lock a scraper out; with
// every slot busy serving, the newcomer waits until one is done (the
// server's timeouts bound that).
type connLimiter struct {
	net.Listener
	slots chan struct{} // one token per open connection
	done  chan struct{} // closed by Close, to end a wait for a slot
	once  sync.Once

	mu      sync.Mutex
	waiting map[*limitedConn]time.Time // connections without a request in progress, since when
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{
		Listener: ln,
		slots:    make(chan struct{}, max),
		done:     make(chan struct{}),
		waiting:  map[*limitedConn]time.Time{},
	}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.evict()
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			_ = c.Close()
			return nil, net.ErrClosed
		}
	}
	lc := &limitedConn{Conn: c, release: func() { <-l.slots }}
	l.mu.Lock()
	l.waiting[lc] = time.Now()
	l.mu.Unlock()
	return lc, nil
}

func (l *connLimiter) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// evict closes the connection that has waited longest without a request.
func (l *connLimiter) evict() {
	l.mu.Lock()
	var (
		oldest *limitedConn
		since  time.Time
	)
	for c, t := range l.waiting {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	if oldest != nil {
		delete(l.waiting, oldest)
	}
	l.mu.Unlock()
	if oldest != nil {
		_ = oldest.Close()
	}
}

// track is the http.Server's ConnState hook: it keeps l.waiting current.
func (l *connLimiter) track(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateIdle:
		l.waiting[lc] = time.Now()
	case http.StateNew:
		// Already recorded by Accept.
	default: // active, hijacked, closed
		delete(l.waiting, lc)
	}
}

// open is how many connections hold a slot now.
func (l *connLimiter) open() int { return len(l.slots) }

// limitedConn gives its slot back on its first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
