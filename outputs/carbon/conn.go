package carbon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Defaults for the zero fields of ConnConfig; the carbon outputs use the same.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultReconnectMin   = 100 * time.Millisecond
	DefaultReconnectMax   = 30 * time.Second
)

// logEvery bounds how often a Conn logs while Carbon stays unreachable or
// keeps dropping connections: state changes are worth a line, but one line
// per failed attempt for hours would drown everything else.
const logEvery = time.Minute

// ConnConfig says where a Conn connects and how patiently. Zero durations
// mean the defaults above.
type ConnConfig struct {
	// Kind and Name identify the output in errors: `carbon-pickle: dial
	// 127.0.0.1:2004: connection refused`, or `carbon-pickle "graphite":
	// ...` when the instance has a name of its own.
	Kind, Name string
	// Address is "host:port", or "@service" to be looked up with Resolver
	// on every (re)connect.
	Address  string
	Resolver metric.Resolver
	// ConnectTimeout bounds a whole connection attempt: the service
	// lookup and the dials to every address it returned, together.
	ConnectTimeout time.Duration
	// WriteTimeout bounds each Write once connected.
	WriteTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the delay between failed dials,
	// which doubles with every failure in a row.
	ReconnectMin, ReconnectMax time.Duration
	// Logger receives state changes; nil discards them.
	Logger *slog.Logger
	// TLS, when not nil, wraps every connection in TLS with this client
	// config (see TLSConfig.Build). With an empty ServerName the host of
	// the address dialled is verified. The handshake counts against
	// ConnectTimeout.
	TLS *tls.Config
}

// Validate checks the config without any I/O. Its errors name the config
// keys of the carbon outputs, which mirror the fields.
func (c *ConnConfig) Validate() error {
	if err := ValidateAddress(c.Address); err != nil {
		return err
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"connect_timeout", c.ConnectTimeout},
		{"write_timeout", c.WriteTimeout},
		{"reconnect_min", c.ReconnectMin},
		{"reconnect_max", c.ReconnectMax},
	} {
		if d.val <= 0 {
			return fmt.Errorf("%s: %v must be positive", d.key, d.val)
		}
	}
	if c.ReconnectMax < c.ReconnectMin {
		return fmt.Errorf("reconnect_max: %v is less than reconnect_min %v", c.ReconnectMax, c.ReconnectMin)
	}
	return nil
}

// ValidateAddress checks that addr is "host:port" with a numeric port, or
// "@service", without resolving anything.
func ValidateAddress(addr string) error {
	if addr == "" {
		return errors.New("address: missing; set host:port or @service")
	}
	if svc, ok := strings.CutPrefix(addr, "@"); ok {
		if svc != "" && !strings.ContainsAny(svc, " \t\r\n@/") {
			return nil
		}
	} else if host, port, err := net.SplitHostPort(addr); err == nil && host != "" && !strings.ContainsAny(host, " \t\r\n") {
		if n, err := strconv.ParseUint(port, 10, 16); err == nil && n > 0 {
			return nil
		}
	}
	return fmt.Errorf("address: %q is not host:port or @service", addr)
}

// Conn is a TCP connection to Carbon that reconnects by itself. Carbon
// never answers, so delivery is all-or-nothing per Write: a failed Write
// closes the connection and the caller sends the same bytes again later;
// Carbon keeps the last value per path and timestamp, so duplicates are
// harmless.
//
// Dialling happens in the background, never inside Write: a Write while
// disconnected starts a dial (unless one is under way or the backoff
// forbids it) and fails at once, so that the router can hand the batch to
// a fallback instead of waiting for Carbon. A dial tries every address a
// service lookup returned, staggered and in parallel (as "happy eyeballs"
// does), and the whole attempt, lookup included, ends at ConnectTimeout:
// six black-holed addresses cost one ConnectTimeout, not six.
//
// Write must be called by one goroutine at a time; Connected and Close may
// be called from any goroutine.
type Conn struct {
	cfg     ConnConfig
	prefix  string
	log     *slog.Logger
	dialer  net.Dialer
	closing context.Context // done once Close is called, to abort a dial in flight
	stop    context.CancelFunc
	readers sync.WaitGroup
	dials   sync.WaitGroup   // the background dial, if any
	now     func() time.Time // the clock behind backoff and log pacing; swapped in tests

	mu       sync.Mutex
	conn     net.Conn      // nil while disconnected
	peer     string        // the address conn was dialled at
	dialing  chan struct{} // not nil while a dial is under way; closed when it ends
	closed   bool
	failures int // failed dials since the last success
	hung     int // writes that failed since one was acknowledged
	// reconnects counts connections made after the first (read without c.mu).
	reconnects atomic.Uint64

	// Used by Write only (one caller at a time): see waitAcked.
	probe     *ackProbe
	probeConn net.Conn
	ackTimer  *time.Timer
	retryAt   time.Time // no dial before this
	lastErr   *connError
	out       outage
}

// outage is what a Conn remembers about a period without a connection, to
// log its start, its end and, sparsely, its middle.
type outage struct {
	down      bool
	since     time.Time
	quiet     bool      // started too soon after the last one to be logged
	lastLog   time.Time // last line logged about any outage
	unlogged  int       // outages since then that were not logged
	connected bool      // a connection has ever been made
}

// NewConn returns a Conn that has not connected yet. It fails, without any
// I/O, only when Address names a service and there is no Resolver.
func NewConn(cfg ConnConfig) (*Conn, error) {
	if strings.HasPrefix(cfg.Address, "@") && cfg.Resolver == nil {
		return nil, fmt.Errorf("address: %q needs a service resolver (Consul), and none is configured", cfg.Address)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = DefaultReconnectMin
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = max(DefaultReconnectMax, cfg.ReconnectMin)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prefix := cfg.Kind
	if cfg.Name != "" && cfg.Name != cfg.Kind {
		prefix += " " + strconv.Quote(cfg.Name)
	}
	if prefix == "" {
		prefix = "carbon"
	}
	c := &Conn{
		cfg:    cfg,
		prefix: prefix,
		log:    log.With("address", cfg.Address),
		dialer: net.Dialer{Timeout: cfg.ConnectTimeout},
		now:    time.Now,
	}
	c.closing, c.stop = context.WithCancel(context.Background())
	return c, nil
}

// Connect starts a dial in the background unless the Conn is connected,
// already dialling or waiting out the backoff after a failure, and returns
// without waiting for it: the router calls it for every output at
// start-up, and one Carbon that does not answer must not hold up the
// others. It returns nil when connected or dialling, else the error Write
// would return (wrapping metric.ErrNotConnected, or net.ErrClosed).
func (c *Conn) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &connError{prefix: c.prefix, op: "dial", addr: c.cfg.Address, err: err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.unavailableLocked()
	var we *waitError
	if errors.As(err, &we) && we.dialling {
		return nil
	}
	return err
}

// unavailable is nil when the Conn is connected. Otherwise it starts a
// dial if it may, and returns the error a Write returns now.
func (c *Conn) unavailable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unavailableLocked()
}

func (c *Conn) unavailableLocked() error {
	if c.closed {
		return c.closedError()
	}
	if c.conn != nil {
		return nil
	}
	c.startDial()
	e := &waitError{prefix: c.prefix, last: c.lastErr, dialling: c.dialing != nil}
	if !e.dialling {
		e.wait = c.retryAt.Sub(c.now())
	}
	return e
}

// Connected reports whether the Conn holds a connection that has not yet
// failed or been closed by Carbon.
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Write sends all of p. Without a connection it fails at once, wrapping
// metric.ErrNotConnected, after starting a dial in the background if none
// is under way and the backoff allows. Every error it returns after a
// failed write wraps metric.ErrNotConnected too, and the connection is
// then closed: part of p may have reached Carbon, and the rest must not
// follow on the same stream, or Carbon would read a torn frame.
//
// Cancelling ctx aborts a write in flight; the error then wraps
// context.Canceled instead of metric.ErrNotConnected, since Carbon is not to
// blame, and no backoff follows. A ctx deadline shorter than WriteTimeout
// bounds the write instead; missing it wraps both
// context.DeadlineExceeded and metric.ErrNotConnected. A ctx already done
// when Write is called yields just ctx.Err(), wrapped.
func (c *Conn) Write(ctx context.Context, p []byte) error {
	if err := ctx.Err(); err != nil {
		return &connError{prefix: c.prefix, op: "write", addr: c.cfg.Address, err: err}
	}
	c.mu.Lock()
	conn, peer := c.conn, c.peer
	if conn == nil {
		err := c.unavailableLocked()
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()

	deadline := time.Now().Add(c.cfg.WriteTimeout)
	ctxDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxDeadline = d, true
	}
	_ = conn.SetWriteDeadline(deadline) // on a closed conn, Write fails below
	var (
		unwatch func() bool
		aborted chan struct{}
	)
	if ctx.Done() != nil {
		// A deadline in the past wakes a blocked Write at once.
		aborted = make(chan struct{})
		unwatch = context.AfterFunc(ctx, func() {
			_ = conn.SetWriteDeadline(time.Unix(1, 0))
			close(aborted)
		})
	}
	_, werr := conn.Write(p)
	if werr == nil {
		werr = c.waitAcked(ctx, conn, deadline)
	}
	if unwatch != nil && !unwatch() {
		// Let the callback finish before the next Write sets a deadline
		// that it could otherwise overwrite.
		<-aborted
	}
	if werr == nil {
		c.mu.Lock()
		c.hung = 0
		c.mu.Unlock()
		return nil
	}

	e := &connError{prefix: c.prefix, op: "write", addr: peer, err: werr, down: true}
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		e.err, e.down = ctx.Err(), false
	case ctx.Err() != nil || ctxDeadline && errors.Is(werr, os.ErrDeadlineExceeded):
		// The caller's deadline, not WriteTimeout, cut the write short
		// (the socket may notice a moment before ctx does). It is still a
		// Carbon too slow to take the data.
		e.err = context.DeadlineExceeded
	}
	c.drop(conn, e, e.down)
	return e
}

// Reconnects counts the connections made after the first one.
func (c *Conn) Reconnects() uint64 { return c.reconnects.Load() }

// Close closes the connection, aborts a dial in flight and waits for it
// and for the connection's reader to stop. Later Writes fail with
// net.ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	// Only now, so that a dial it aborts finds c.closed set and reports
	// the Conn closed rather than Carbon unreachable.
	c.stop()

	var err error
	if conn != nil {
		if cerr := conn.Close(); cerr != nil {
			err = &connError{prefix: c.prefix, op: "close", addr: c.cfg.Address, err: cerr}
		}
	}
	c.dials.Wait()
	c.readers.Wait()
	return err
}

// startDial starts a dial in the background unless the Conn is closed,
// connected, already dialling or waiting out the backoff. Called with c.mu
// held.
func (c *Conn) startDial() {
	if c.closed || c.conn != nil || c.dialing != nil || c.now().Before(c.retryAt) {
		return
	}
	done := make(chan struct{})
	c.dialing = done
	c.dials.Add(1)
	go func() {
		defer c.dials.Done()
		defer close(done) // after the state below is set: waiters see it
		conn, peer, derr := c.dial()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.dialing = nil
		switch {
		case c.closed:
			if conn != nil {
				_ = conn.Close()
			}
		case derr != nil:
			c.dialFailed(derr)
		default:
			c.attach(conn, peer)
		}
	}()
}

// dialStagger is how long a dial waits for an address to answer before
// trying the next one as well: RFC 8305's recommended connection attempt
// delay. It shrinks when there are so many addresses that the last would
// start later than half-way through ConnectTimeout, so that each has time
// to answer.
const dialStagger = 250 * time.Millisecond

// dial resolves the address if it names a service and dials the
// addresses, all within ConnectTimeout; Close aborts it.
func (c *Conn) dial() (net.Conn, string, *connError) {
	ctx, cancel := context.WithTimeout(c.closing, c.cfg.ConnectTimeout)
	defer cancel()

	addrs := []string{c.cfg.Address}
	if svc, ok := strings.CutPrefix(c.cfg.Address, "@"); ok {
		resolved, err := c.cfg.Resolver.Resolve(ctx, svc)
		if err == nil && len(resolved) == 0 {
			err = errNoInstances
		}
		if err != nil {
			return nil, "", &connError{prefix: c.prefix, op: "resolve", addr: c.cfg.Address, err: err, down: true}
		}
		addrs = resolved
	}
	stagger := min(dialStagger, c.cfg.ConnectTimeout/time.Duration(2*len(addrs)))
	return c.dialAny(ctx, addrs, stagger)
}

// dialAny dials addrs in order, starting the next one when the last has
// failed or stagger has passed, and returns the first connection made;
// the attempts still running are cancelled and their connections, should
// they succeed anyway, closed. With none it returns the error of the
// attempt that failed last.
func (c *Conn) dialAny(ctx context.Context, addrs []string, stagger time.Duration) (net.Conn, string, *connError) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		conn net.Conn
		addr string
		err  error
	}
	results := make(chan result, len(addrs))
	next, running := 0, 0
	start := func() {
		addr := addrs[next]
		next++
		running++
		go func() {
			conn, err := c.dialOne(ctx, addr)
			results <- result{conn, addr, err}
		}()
	}
	var (
		last  *connError
		won   result
		timer = time.NewTimer(stagger)
	)
	defer timer.Stop()
	start()
	for running > 0 {
		var tick <-chan time.Time
		if next < len(addrs) && won.conn == nil {
			tick = timer.C
		}
		select {
		case r := <-results:
			running--
			switch {
			case r.err == nil && won.conn == nil:
				won = r
				cancel() // the others stop; wait for them below
			case r.err == nil:
				_ = r.conn.Close() // a late second success
			case won.conn == nil:
				last = &connError{prefix: c.prefix, op: "dial", addr: r.addr, err: r.err, down: true}
				if next < len(addrs) {
					c.log.Debug("cannot connect to one instance, trying the next", "peer", r.addr, "error", last.detail())
					if ctx.Err() == nil {
						start()
						timer.Reset(stagger)
					}
				}
			}
		case <-tick:
			if ctx.Err() == nil {
				start()
				timer.Reset(stagger)
			}
		}
	}
	if won.conn != nil {
		return won.conn, won.addr, nil
	}
	return nil, "", last
}

// dialOne makes one connection, with the TLS handshake if configured.
func (c *Conn) dialOne(ctx context.Context, addr string) (net.Conn, error) {
	if c.cfg.TLS != nil {
		td := tls.Dialer{NetDialer: &c.dialer, Config: c.cfg.TLS}
		return td.DialContext(ctx, "tcp", addr)
	}
	return c.dialer.DialContext(ctx, "tcp", addr)
}

// attach makes conn the live connection and starts its reader. Called with c.mu held.
func (c *Conn) attach(conn net.Conn, peer string) {
	c.conn, c.peer = conn, peer
	failures := c.failures
	c.failures, c.retryAt, c.lastErr = 0, time.Time{}, nil
	o := &c.out
	switch {
	case o.down && !o.quiet:
		msg := "connected to carbon"
		if o.connected {
			msg = "connected to carbon again"
		}
		c.log.Warn(msg, "peer", peer, "failed_attempts", failures,
			"down_for", c.now().Sub(o.since).Round(time.Millisecond))
		o.lastLog = c.now()
	case !o.connected:
		c.log.Info("connected to carbon", "peer", peer)
	}
	if o.connected {
		c.reconnects.Add(1)
	}
	o.connected, o.down = true, false
	c.readers.Go(func() { c.watch(conn) })
}

// watch reads from conn until it fails. Carbon never sends anything, so a
// read returns only when Carbon closes or resets the connection, typically
// on restart. Noticing that here means the next Write dials afresh instead
// of writing into a socket whose peer is gone, which the kernel would
// accept and the data would be lost.
func (c *Conn) watch(conn net.Conn) {
	var buf [128]byte
	for {
		if _, err := conn.Read(buf[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = errClosedByPeer
			}
			c.mu.Lock()
			if c.conn == conn { // not already dropped by Write or Close
				c.conn = nil
				_ = conn.Close()
				c.outageStarts("lost connection to carbon", &connError{prefix: c.prefix, op: "read", addr: c.peer, err: err, down: true})
			}
			c.mu.Unlock()
			return
		}
	}
}

// drop closes conn after a failed write and, if backoff is set (the write
// failed, not the caller's context), keeps the next dial from happening
// before the minimum delay.
func (c *Conn) drop(conn net.Conn, err *connError, backoff bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != conn {
		return // the reader or Close got there first
	}
	c.conn = nil
	_ = conn.Close()
	if !backoff {
		// Cancelled by the caller, typically at shutdown: not an outage.
		c.log.Debug("closed connection after cancelled write", "error", err.detail())
		return
	}
	c.lastErr = err
	// A Carbon that accepts connections but stops reading makes every
	// connection's writes time out: back off further each time, rather than
	// redial at the minimum delay forever.
	c.hung++
	c.retryAt = c.now().Add(backoffDelay(c.hung, c.cfg.ReconnectMin, c.cfg.ReconnectMax))
	c.outageStarts("lost connection to carbon", err)
}

// waitAcked returns once the peer has acknowledged every byte written to
// conn, or fails at the deadline. Only then does a write count as
// delivered: bytes still in this side's send buffer are discarded when a
// hung connection is closed, and their messages must not be committed. It
// also makes a Carbon that stops reading stop the stream, as its TCP
// window closes, instead of absorbing a socket buffer per reconnect.
// Write is called by one goroutine at a time, so the probe and timer are
// reused without locking.
func (c *Conn) waitAcked(ctx context.Context, conn net.Conn, deadline time.Time) error {
	if c.probeConn != conn { // once per connection, so that writes allocate nothing
		c.probe, c.probeConn = newAckProbe(conn), conn
		if c.ackTimer == nil {
			c.ackTimer = time.NewTimer(time.Hour)
			c.ackTimer.Stop()
		}
	}
	pause := 20 * time.Microsecond
	for {
		n, ok := c.probe.unacked()
		if !ok || n == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%d bytes not acknowledged by carbon: %w", n, os.ErrDeadlineExceeded)
		}
		c.ackTimer.Reset(min(pause, time.Until(deadline)))
		select {
		case <-ctx.Done():
			c.ackTimer.Stop()
			return ctx.Err()
		case <-c.ackTimer.C:
		}
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// dialFailed schedules the next dial. Called with c.mu held.
func (c *Conn) dialFailed(err *connError) {
	c.failures++
	c.lastErr = err
	wait := backoffDelay(c.failures, c.cfg.ReconnectMin, c.cfg.ReconnectMax)
	now := c.now()
	c.retryAt = now.Add(wait)
	o := &c.out
	if !o.down {
		c.outageStarts("cannot connect to carbon", err)
		return
	}
	if now.Sub(o.lastLog) >= logEvery {
		c.log.Warn("still cannot connect to carbon", "error", err.detail(),
			"failed_attempts", c.failures, "down_for", now.Sub(o.since).Round(time.Second))
		o.lastLog, o.quiet = now, false
	}
}

// outageStarts records the start of an outage and logs it, unless the last
// outage was logged less than logEvery ago: a Carbon that keeps accepting
// and dropping connections is then reported once a minute with a count.
// Called with c.mu held.
func (c *Conn) outageStarts(msg string, err *connError) {
	now := c.now()
	o := &c.out
	o.down, o.since = true, now
	if !o.lastLog.IsZero() && now.Sub(o.lastLog) < logEvery {
		o.quiet = true
		o.unlogged++
		return
	}
	attrs := []any{"error", err.detail()}
	if o.unlogged > 0 {
		attrs = append(attrs, "unlogged_outages", o.unlogged)
	}
	c.log.Warn(msg, attrs...)
	o.quiet, o.unlogged, o.lastLog = false, 0, now
}

func (c *Conn) closedError() error {
	return &connError{prefix: c.prefix, op: "write", addr: c.cfg.Address, err: net.ErrClosed}
}

// backoffDelay is how long to wait after the n-th failure in a row: lo
// doubled n-1 times, capped at hi, then drawn from its upper half so that
// many shovels do not all redial a restarted Carbon at the same instant.
// It is never below lo.
func backoffDelay(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		if d > hi/2 {
			d = hi
			break
		}
		d *= 2
	}
	d = min(d, hi)
	d -= time.Duration(rand.Int64N(int64(d/2) + 1))
	return max(d, lo)
}

var (
	errNoInstances  = errors.New("no healthy instances")
	errClosedByPeer = errors.New("closed by peer")
)

// connError is a failed dial, write or lookup. It reads like `carbon-pickle:
// dial 127.0.0.1:2004: connection refused` and wraps metric.ErrNotConnected
// when the router should treat Carbon as unreachable.
type connError struct {
	prefix string
	op     string // "dial", "write", "read", "resolve", "close"
	addr   string
	err    error
	down   bool // wraps metric.ErrNotConnected
}

func (e *connError) Error() string { return e.prefix + ": " + e.detail() }

// detail is the error without its prefix, for log lines already scoped to the output.
func (e *connError) detail() string {
	if e.op == "resolve" {
		// The resolver's own error names the service and Consul's address,
		// which is what an operator needs; its net error is not ours to trim.
		return e.op + " " + e.addr + ": " + e.err.Error()
	}
	return e.op + " " + e.addr + ": " + causeText(e.err)
}

func (e *connError) Unwrap() []error {
	if e.down {
		return []error{metric.ErrNotConnected, e.err}
	}
	return []error{e.err}
}

// causeText strips the layers of a net error that repeat what connError
// already says ("dial tcp 127.0.0.1:2004: connect: connection refused"
// becomes "connection refused").
func causeText(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	var sys *os.SyscallError
	if errors.As(err, &sys) && sys.Err != nil {
		err = sys.Err
	}
	return err.Error()
}

// waitError is returned while the Conn dials in the background or waits
// out the backoff after a failure.
type waitError struct {
	prefix   string
	dialling bool
	wait     time.Duration
	last     *connError
}

func (e *waitError) Error() string {
	msg := e.prefix + ": " + metric.ErrNotConnected.Error()
	if e.dialling {
		msg += ", connecting"
	} else {
		msg += ", next attempt in " + e.wait.Round(time.Millisecond).String()
	}
	if e.last != nil {
		msg += " (last error: " + e.last.detail() + ")"
	}
	return msg
}

func (e *waitError) Unwrap() []error {
	if e.last != nil {
		return []error{metric.ErrNotConnected, e.last.err}
	}
	return []error{metric.ErrNotConnected}
}
