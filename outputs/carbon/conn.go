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
	// ConnectTimeout bounds the service lookup and each address dialled.
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
	now     func() time.Time // the clock behind backoff and log pacing; swapped in tests

	mu       sync.Mutex
	conn     net.Conn // nil while disconnected
	peer     string   // the address conn was dialled at
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

// Connect dials unless already connected or still backing off from a
// failed dial. Its error, like Write's, wraps metric.ErrNotConnected.
func (c *Conn) Connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &connError{prefix: c.prefix, op: "dial", addr: c.cfg.Address, err: err}
	}
	_, _, err := c.current(ctx)
	return err
}

// Ready reports whether a Write would try to send now rather than fail at
// once: the Conn is connected, or it is not waiting out the backoff after
// a failure. A closed Conn is never ready.
func (c *Conn) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && (c.conn != nil || !c.now().Before(c.retryAt))
}

// Connected reports whether the Conn holds a connection that has not yet
// failed or been closed by Carbon.
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Write sends all of p, dialling first if there is no connection. If the
// last dial failed less than the backoff delay ago it returns at once,
// without dialling. Every error it returns after a failed dial or write
// wraps metric.ErrNotConnected, and after a failed write the connection is
// closed: part of p may have reached Carbon, and the rest must not follow
// on the same stream, or Carbon would read a torn frame.
//
// Cancelling ctx aborts a dial or write in flight; the error then wraps
// context.Canceled instead of metric.ErrNotConnected, since Carbon is not to
// blame, and no backoff follows. A ctx deadline shorter than the timeouts
// bounds the dial or write instead; missing it wraps both
// context.DeadlineExceeded and metric.ErrNotConnected. A ctx already done
// when Write is called yields just ctx.Err(), wrapped.
func (c *Conn) Write(ctx context.Context, p []byte) error {
	if err := ctx.Err(); err != nil {
		return &connError{prefix: c.prefix, op: "write", addr: c.cfg.Address, err: err}
	}
	conn, peer, err := c.current(ctx)
	if err != nil {
		return err
	}

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

// Close closes the connection, aborts a dial in flight and waits for the
// connection's reader to stop. Later Writes fail with net.ErrClosed.
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
	c.readers.Wait()
	return err
}

// current returns the live connection, dialling one if the backoff allows.
func (c *Conn) current(ctx context.Context) (net.Conn, string, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, "", c.closedError()
	}
	if c.conn != nil {
		conn, peer := c.conn, c.peer
		c.mu.Unlock()
		return conn, peer, nil
	}
	if now := c.now(); now.Before(c.retryAt) {
		err := &waitError{prefix: c.prefix, wait: c.retryAt.Sub(now), last: c.lastErr}
		c.mu.Unlock()
		return nil, "", err
	}
	c.mu.Unlock()

	// Dial without the lock, so that Close and Connected need not wait for it.
	conn, peer, derr := c.dial(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		if conn != nil {
			_ = conn.Close()
		}
		return nil, "", c.closedError()
	case derr != nil && errors.Is(ctx.Err(), context.Canceled):
		// Not Carbon's fault: no backoff.
		derr.err, derr.down = ctx.Err(), false
		return nil, "", derr
	case derr != nil:
		if ctx.Err() != nil {
			derr.err = ctx.Err() // the caller's deadline: Carbon too slow to answer
		}
		c.dialFailed(derr)
		return nil, "", derr
	case c.conn != nil:
		// Someone else connected meanwhile; keep theirs.
		_ = conn.Close()
		return c.conn, c.peer, nil
	}
	c.attach(conn, peer)
	return conn, peer, nil
}

// dial resolves the address if it names a service and dials the addresses
// in order until one answers.
func (c *Conn) dial(ctx context.Context) (net.Conn, string, *connError) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.closing, cancel)()

	addrs := []string{c.cfg.Address}
	if svc, ok := strings.CutPrefix(c.cfg.Address, "@"); ok {
		rctx, rcancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
		resolved, err := c.cfg.Resolver.Resolve(rctx, svc)
		rcancel()
		if err == nil && len(resolved) == 0 {
			err = errNoInstances
		}
		if err != nil {
			return nil, "", &connError{prefix: c.prefix, op: "resolve", addr: c.cfg.Address, err: err, down: true}
		}
		addrs = resolved
	}

	var last *connError
	for i, addr := range addrs {
		var (
			conn net.Conn
			err  error
		)
		if c.cfg.TLS != nil {
			td := tls.Dialer{NetDialer: &c.dialer, Config: c.cfg.TLS}
			conn, err = td.DialContext(ctx, "tcp", addr)
		} else {
			conn, err = c.dialer.DialContext(ctx, "tcp", addr)
		}
		if err == nil {
			return conn, addr, nil
		}
		last = &connError{prefix: c.prefix, op: "dial", addr: addr, err: err, down: true}
		if ctx.Err() != nil {
			break
		}
		if i < len(addrs)-1 {
			c.log.Debug("cannot connect to one instance, trying the next", "peer", addr, "error", last.detail())
		}
	}
	return nil, "", last
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

// waitError is returned while the Conn waits out the backoff after a failure.
type waitError struct {
	prefix string
	wait   time.Duration
	last   *connError
}

func (e *waitError) Error() string {
	msg := e.prefix + ": " + metric.ErrNotConnected.Error() + ", next attempt in " + e.wait.Round(time.Millisecond).String()
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
