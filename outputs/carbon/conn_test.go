package carbon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/metric"
)

// patience bounds every wait on the network or a goroutine. It is generous:
// it only matters when a test is about to fail anyway.
const patience = 5 * time.Second

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// stingyListener is a listener whose connections take in little before
// their peer's writes block, whatever the host's TCP buffer tuning.
func stingyListener(t *testing.T) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, raw syscall.RawConn) error {
		var serr error
		err := raw.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// stingySender keeps c's socket send buffers small, so that a write to a
// peer that does not read blocks after a little data.
func stingySender(c *Conn) {
	c.dialer.Control = func(_, _ string, raw syscall.RawConn) error {
		var serr error
		err := raw.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
		})
		return errors.Join(err, serr)
	}
}

// refusedAddr is an address nothing listens on.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// accept returns the next connection made to ln.
func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(patience):
		t.Fatal("no connection arrived")
		return nil
	}
}

// readN reads exactly n bytes from c.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(patience)))
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	require.NoError(t, err)
	return string(buf)
}

func newConn(t *testing.T, cfg ConnConfig) *Conn {
	t.Helper()
	if cfg.Kind == "" {
		cfg.Kind = "carbon-pickle"
	}
	c, err := NewConn(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// fakeClock drives backoff and log pacing; the reader goroutine reads it too.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	f := &fakeClock{}
	f.ns.Store(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return f
}
func (f *fakeClock) now() time.Time      { return time.Unix(0, f.ns.Load()) }
func (f *fakeClock) add(d time.Duration) { f.ns.Add(int64(d)) }

// fakeResolver answers from a function and counts the lookups.
type fakeResolver struct {
	calls   atomic.Int32
	resolve func(ctx context.Context, service string) ([]string, error)
}

func (r *fakeResolver) Resolve(ctx context.Context, service string) ([]string, error) {
	r.calls.Add(1)
	return r.resolve(ctx, service)
}

// settle waits for the dial under way, if any, to end.
func settle(t *testing.T, c *Conn) {
	t.Helper()
	c.mu.Lock()
	d := c.dialing
	c.mu.Unlock()
	if d == nil {
		return
	}
	select {
	case <-d:
	case <-time.After(patience):
		t.Fatal("the dial did not end")
	}
}

// connectNow starts a dial, waits for it and returns its error, nil if
// the Conn is connected.
func connectNow(t *testing.T, c *Conn) error {
	t.Helper()
	if err := c.Connect(context.Background()); err != nil {
		return err
	}
	settle(t, c)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return nil
	}
	if c.closed {
		return c.closedError()
	}
	return c.lastErr
}

func TestConnWrites(t *testing.T) {
	ln := listen(t)
	c := newConn(t, ConnConfig{Address: ln.Addr().String()})
	ctx := context.Background()

	require.NoError(t, connectNow(t, c))
	peer := accept(t, ln)
	require.True(t, c.Connected())
	require.NoError(t, c.Write(ctx, []byte("hello ")))
	require.NoError(t, c.Write(ctx, []byte("world")))
	require.Equal(t, "hello world", readN(t, peer, 11), "both writes on the one connection")
}

func TestConnErrors(t *testing.T) {
	addr := refusedAddr(t)
	tests := []struct {
		name, kind, instance, want string
	}{
		{"kind only", "carbon-pickle", "", "carbon-pickle: dial " + addr + ": connection refused"},
		{"instance named like its kind", "carbon-pickle", "carbon-pickle", "carbon-pickle: dial " + addr + ": connection refused"},
		{"named instance", "carbon-plaintext", "graphite", `carbon-plaintext "graphite": dial ` + addr + ": connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConn(t, ConnConfig{Kind: tt.kind, Name: tt.instance, Address: addr})
			err := connectNow(t, c)
			require.EqualError(t, err, tt.want)
			require.ErrorIs(t, err, metric.ErrNotConnected)
			require.ErrorIs(t, err, syscall.ECONNREFUSED)
			var netErr *net.OpError
			require.ErrorAs(t, err, &netErr, "the net error stays reachable")

			err = c.Write(context.Background(), []byte("x"))
			require.ErrorContains(t, err, strings.TrimPrefix(tt.want, tt.want[:strings.Index(tt.want, ": ")+2]), "Write names the last error")
			require.ErrorIs(t, err, metric.ErrNotConnected)
			require.ErrorIs(t, err, syscall.ECONNREFUSED)
		})
	}
}

func TestConnBacksOff(t *testing.T) {
	addr := refusedAddr(t)
	res := &fakeResolver{resolve: func(context.Context, string) ([]string, error) { return []string{addr}, nil }}
	clk := newFakeClock()
	c := newConn(t, ConnConfig{Address: "@carbon", Resolver: res, ReconnectMin: time.Second, ReconnectMax: 4 * time.Second})
	c.now = clk.now
	ctx := context.Background()

	require.ErrorIs(t, connectNow(t, c), syscall.ECONNREFUSED)
	require.EqualValues(t, 1, res.calls.Load())

	// Within the backoff: no lookup, no dial, an immediate error.
	err := c.Write(ctx, []byte("x"))
	require.ErrorIs(t, err, metric.ErrNotConnected)
	require.ErrorIs(t, err, syscall.ECONNREFUSED, "the last cause stays reachable")
	require.EqualError(t, err, "carbon-pickle: not connected, next attempt in 1s (last error: dial "+addr+": connection refused)")
	require.ErrorIs(t, c.Connect(ctx), metric.ErrNotConnected)
	require.EqualValues(t, 1, res.calls.Load())

	// The delay doubles with each failure and stops at the maximum.
	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second} {
		clk.add(time.Hour)
		require.ErrorIs(t, connectNow(t, c), syscall.ECONNREFUSED)
		require.EqualValues(t, i+2, res.calls.Load())
		c.mu.Lock()
		wait := c.retryAt.Sub(clk.now())
		c.mu.Unlock()
		require.GreaterOrEqual(t, wait, want/2, "failure %d", i+2)
		require.LessOrEqual(t, wait, want, "failure %d", i+2)
	}

	// Once the backoff is over, a Write starts the next dial and still
	// fails at once, without waiting for it.
	clk.add(time.Hour)
	err = c.Write(ctx, []byte("x"))
	require.ErrorIs(t, err, metric.ErrNotConnected)
	require.EqualError(t, err, "carbon-pickle: not connected, connecting (last error: dial "+addr+": connection refused)")
	settle(t, c)
	require.EqualValues(t, 6, res.calls.Load())
}

func TestBackoffDelay(t *testing.T) {
	tests := []struct {
		n      int
		lo, hi time.Duration
		full   time.Duration // the delay before jitter
	}{
		{1, 100 * time.Millisecond, 30 * time.Second, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 30 * time.Second, 200 * time.Millisecond},
		{5, 100 * time.Millisecond, 30 * time.Second, 1600 * time.Millisecond},
		{10, 100 * time.Millisecond, 30 * time.Second, 30 * time.Second},
		{1000, 100 * time.Millisecond, 30 * time.Second, 30 * time.Second},
		{1000, time.Second, math.MaxInt64, math.MaxInt64},
		{3, time.Second, time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.full.String(), func(t *testing.T) {
			for range 200 {
				d := backoffDelay(tt.n, tt.lo, tt.hi)
				require.GreaterOrEqual(t, d, max(tt.lo, tt.full/2))
				require.LessOrEqual(t, d, tt.full)
			}
		})
	}
}

// TestConnNoticesClosedPeer is the Carbon restart case: without the reader,
// the next write would go into a socket whose peer is gone and be lost.
func TestConnNoticesClosedPeer(t *testing.T) {
	ln := listen(t)
	c := newConn(t, ConnConfig{Address: ln.Addr().String()})
	ctx := context.Background()

	require.NoError(t, connectNow(t, c))
	require.NoError(t, c.Write(ctx, []byte("one")))
	first := accept(t, ln)
	require.Equal(t, "one", readN(t, first, 3))

	require.NoError(t, first.Close())
	require.Eventually(t, func() bool { return !c.Connected() }, patience, time.Millisecond)

	err := c.Write(ctx, []byte("lost"))
	require.ErrorIs(t, err, metric.ErrNotConnected, "not written into a socket whose peer is gone")
	require.ErrorContains(t, err, "not connected, connecting", "a closed peer is not a failed dial: no backoff")
	settle(t, c)
	require.NoError(t, c.Write(ctx, []byte("two")))
	second := accept(t, ln)
	require.Equal(t, "two", readN(t, second, 3))
}

func TestConnReconnectsAfterRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	c := newConn(t, ConnConfig{Address: addr, ReconnectMin: 5 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
	ctx := context.Background()

	require.NoError(t, connectNow(t, c))
	require.NoError(t, c.Write(ctx, []byte("before")))
	peer := accept(t, ln)
	require.Equal(t, "before", readN(t, peer, 6))

	// Carbon goes away.
	require.NoError(t, ln.Close())
	require.NoError(t, peer.Close())
	require.Eventually(t, func() bool { return !c.Connected() }, patience, time.Millisecond)
	for range 3 {
		require.ErrorIs(t, c.Write(ctx, []byte("during")), metric.ErrNotConnected)
	}

	// Carbon comes back on the same port.
	var ln2 net.Listener
	require.Eventually(t, func() bool {
		ln2, err = net.Listen("tcp", addr)
		return err == nil
	}, patience, 10*time.Millisecond, "port %s taken meanwhile", addr)
	t.Cleanup(func() { ln2.Close() })

	require.Eventually(t, func() bool {
		err := c.Write(ctx, []byte("after"))
		if err != nil {
			require.ErrorIs(t, err, metric.ErrNotConnected)
		}
		return err == nil
	}, patience, time.Millisecond)
	require.Equal(t, "after", readN(t, accept(t, ln2), 5))
}

func TestConnWriteTimeout(t *testing.T) {
	ln := stingyListener(t)
	c := newConn(t, ConnConfig{Address: ln.Addr().String(), WriteTimeout: 200 * time.Millisecond})
	stingySender(c)
	ctx := context.Background()
	require.NoError(t, connectNow(t, c))
	accept(t, ln) // and never read

	// Far more than the socket buffers of both ends hold.
	start := time.Now()
	err := c.Write(ctx, make([]byte, 8<<20))
	require.Less(t, time.Since(start), patience)
	require.ErrorIs(t, err, metric.ErrNotConnected)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.EqualError(t, err, "carbon-pickle: write "+ln.Addr().String()+": i/o timeout")
	require.False(t, c.Connected(), "a torn write must close the connection")
}

func TestConnWriteCancel(t *testing.T) {
	ln := stingyListener(t)
	c := newConn(t, ConnConfig{Address: ln.Addr().String(), WriteTimeout: time.Hour})
	stingySender(c)
	require.NoError(t, connectNow(t, c))
	peer := accept(t, ln)
	big := make([]byte, 8<<20) // far more than the socket buffers hold

	t.Run("before the write", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := c.Write(ctx, []byte("x"))
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, metric.ErrNotConnected)
		require.True(t, c.Connected())
	})

	t.Run("during the write", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			// The first byte arriving proves the write is under way; it
			// then blocks, since nothing more is read.
			_, _ = peer.Read(make([]byte, 1))
			cancel()
		}()
		start := time.Now()
		err := c.Write(ctx, big)
		require.Less(t, time.Since(start), patience)
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, metric.ErrNotConnected, "cancelling is not Carbon's fault")
		require.False(t, c.Connected(), "a torn write must close the connection")
	})

	t.Run("no backoff after cancel", func(t *testing.T) {
		require.NoError(t, connectNow(t, c))
	})

	t.Run("deadline", func(t *testing.T) {
		accept(t, ln) // and never read
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := c.Write(ctx, big)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, err, metric.ErrNotConnected, "too slow is Carbon's fault")
		require.False(t, c.Connected())
	})
}

// blockingResolver never answers before its context ends.
func blockingResolver() *fakeResolver {
	return &fakeResolver{resolve: func(ctx context.Context, _ string) ([]string, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
}

func TestConnDialCancel(t *testing.T) {
	t.Run("close aborts the dial", func(t *testing.T) {
		c := newConn(t, ConnConfig{Address: "@carbon", Resolver: blockingResolver(), ConnectTimeout: time.Hour})
		require.NoError(t, c.Connect(context.Background()), "dialling in the background")
		err := c.Write(context.Background(), []byte("x"))
		require.ErrorIs(t, err, metric.ErrNotConnected)
		require.EqualError(t, err, "carbon-pickle: not connected, connecting")
		closed := make(chan struct{})
		go func() { c.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(patience):
			t.Fatal("Close waits for the dial")
		}
		require.ErrorIs(t, c.Write(context.Background(), []byte("x")), net.ErrClosed)
		require.ErrorIs(t, c.Connect(context.Background()), net.ErrClosed)
	})
	t.Run("connect timeout bounds the lookup", func(t *testing.T) {
		c := newConn(t, ConnConfig{Address: "@carbon", Resolver: blockingResolver(), ConnectTimeout: 20 * time.Millisecond})
		err := connectNow(t, c)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, err, metric.ErrNotConnected)
		require.ErrorContains(t, c.Write(context.Background(), []byte("x")), "next attempt in", "and backs off")
	})
	t.Run("a cancelled caller does not stop the dial", func(t *testing.T) {
		ln := listen(t)
		c := newConn(t, ConnConfig{Address: ln.Addr().String()})
		ctx, cancel := context.WithCancel(context.Background())
		require.NoError(t, c.Connect(ctx))
		cancel()
		settle(t, c)
		require.True(t, c.Connected())
		require.ErrorIs(t, c.Connect(ctx), context.Canceled, "but a call with a done ctx does nothing")
	})
}

func TestConnResolver(t *testing.T) {
	ln := listen(t)
	dead := refusedAddr(t)
	var gotService atomic.Value
	res := &fakeResolver{resolve: func(_ context.Context, svc string) ([]string, error) {
		gotService.Store(svc)
		return []string{dead, ln.Addr().String()}, nil
	}}
	c := newConn(t, ConnConfig{Address: "@carbon-relay", Resolver: res})
	ctx := context.Background()

	require.NoError(t, connectNow(t, c), "the second instance answers")
	require.NoError(t, c.Write(ctx, []byte("one")))
	require.Equal(t, "carbon-relay", gotService.Load())
	peer := accept(t, ln)
	require.Equal(t, "one", readN(t, peer, 3))
	require.EqualValues(t, 1, res.calls.Load())

	require.NoError(t, peer.Close())
	require.Eventually(t, func() bool { return !c.Connected() }, patience, time.Millisecond)
	require.NoError(t, connectNow(t, c))
	require.NoError(t, c.Write(ctx, []byte("two")))
	require.EqualValues(t, 2, res.calls.Load(), "looked up again on reconnect")
	require.Equal(t, "two", readN(t, accept(t, ln), 3))

	t.Run("lookup errors", func(t *testing.T) {
		for _, tt := range []struct {
			name  string
			addrs []string
			err   error
			want  string
		}{
			{"failed", nil, errors.New("consul: 500"), "carbon-pickle: resolve @carbon: consul: 500"},
			{"empty", nil, nil, "carbon-pickle: resolve @carbon: no healthy instances"},
			{"all refuse", []string{dead}, nil, "carbon-pickle: dial " + dead + ": connection refused"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				res := &fakeResolver{resolve: func(context.Context, string) ([]string, error) { return tt.addrs, tt.err }}
				c := newConn(t, ConnConfig{Address: "@carbon", Resolver: res})
				err := connectNow(t, c)
				require.EqualError(t, err, tt.want)
				require.ErrorIs(t, err, metric.ErrNotConnected)
			})
		}
	})

	t.Run("no resolver", func(t *testing.T) {
		_, err := NewConn(ConnConfig{Address: "@carbon"})
		require.EqualError(t, err, `address: "@carbon" needs a service resolver (Consul), and none is configured`)
	})
}

func TestConnClose(t *testing.T) {
	ln := listen(t)
	c := newConn(t, ConnConfig{Address: ln.Addr().String()})
	require.NoError(t, connectNow(t, c))
	peer := accept(t, ln)

	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close twice")
	require.False(t, c.Connected())
	require.NoError(t, peer.SetReadDeadline(time.Now().Add(patience)))
	_, err := peer.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the peer sees the close")
	require.ErrorIs(t, c.Write(context.Background(), []byte("x")), net.ErrClosed)
}

// recorder is a slog.Handler that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

// warnings returns the warning messages so far, with their int attributes.
func (r *recorder) warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		if rec.Level != slog.LevelWarn {
			continue
		}
		msg := rec.Message
		rec.Attrs(func(a slog.Attr) bool {
			if a.Value.Kind() == slog.KindInt64 {
				msg += " " + a.String()
			}
			return true
		})
		out = append(out, msg)
	}
	return out
}

func TestConnLogsStateChanges(t *testing.T) {
	ln := listen(t)
	dead := refusedAddr(t)
	var up atomic.Bool
	res := &fakeResolver{resolve: func(context.Context, string) ([]string, error) {
		if up.Load() {
			return []string{ln.Addr().String()}, nil
		}
		return []string{dead}, nil
	}}
	rec := &recorder{}
	clk := newFakeClock()
	c := newConn(t, ConnConfig{Address: "@carbon", Resolver: res, Logger: slog.New(rec), ReconnectMax: 500 * time.Millisecond})
	c.now = clk.now
	ctx := context.Background()
	failDials := func(n int) {
		for range n {
			clk.add(time.Second)
			require.ErrorIs(t, connectNow(t, c), syscall.ECONNREFUSED)
		}
	}

	failDials(10)
	require.Equal(t, []string{"cannot connect to carbon"}, rec.warnings(), "one line, not one per attempt")

	clk.add(time.Minute)
	failDials(1)
	require.Equal(t, []string{"cannot connect to carbon", "still cannot connect to carbon failed_attempts=11"}, rec.warnings())

	up.Store(true)
	clk.add(time.Hour)
	require.NoError(t, connectNow(t, c))
	require.NoError(t, c.Write(ctx, []byte("x")))
	peer := accept(t, ln)
	require.Equal(t, "connected to carbon failed_attempts=11", rec.warnings()[2])

	// Carbon restarts twice in quick succession: the first outage is
	// logged at both ends, the second is only counted...
	clk.add(time.Hour)
	for range 2 {
		require.NoError(t, peer.Close())
		require.Eventually(t, func() bool { return !c.Connected() }, patience, time.Millisecond)
		require.NoError(t, connectNow(t, c))
		require.NoError(t, c.Write(ctx, []byte("x")))
		peer = accept(t, ln)
	}
	require.Equal(t, []string{
		"lost connection to carbon",
		"connected to carbon again failed_attempts=0",
	}, rec.warnings()[3:])

	// ... until the next outage a while later.
	clk.add(time.Hour)
	require.NoError(t, peer.Close())
	require.Eventually(t, func() bool { return !c.Connected() }, patience, time.Millisecond)
	require.Equal(t, "lost connection to carbon unlogged_outages=1", rec.warnings()[5])
}

// TestConnDialsAddressesTogether: a service whose first instances drop
// every packet costs one ConnectTimeout in all, not one per address, and a
// healthy instance after them is found within it.
func TestConnDialsAddressesTogether(t *testing.T) {
	var holes []string
	for range 6 {
		holes = append(holes, carbontest.BlackHole(t))
	}
	resolving := func(addrs ...string) *fakeResolver {
		return &fakeResolver{resolve: func(context.Context, string) ([]string, error) { return addrs, nil }}
	}

	t.Run("a healthy instance behind six black holes", func(t *testing.T) {
		ln := listen(t)
		const timeout = 3 * time.Second
		c := newConn(t, ConnConfig{Address: "@carbon", Resolver: resolving(append(holes, ln.Addr().String())...), ConnectTimeout: timeout})
		start := time.Now()
		require.NoError(t, connectNow(t, c))
		took := time.Since(start)
		t.Logf("connected after %v", took)
		require.Less(t, took, timeout, "one attempt, within connect_timeout (in turn: 6 × 3 s before even trying it)")
		require.GreaterOrEqual(t, took, 6*min(dialStagger, timeout/14), "the holes were tried first, each given the stagger")
		require.NoError(t, c.Write(context.Background(), []byte("hi")))
		require.Equal(t, "hi", readN(t, accept(t, ln), 2))
	})

	t.Run("six black holes", func(t *testing.T) {
		const timeout = 600 * time.Millisecond
		c := newConn(t, ConnConfig{Address: "@carbon", Resolver: resolving(holes...), ConnectTimeout: timeout})
		start := time.Now()
		err := connectNow(t, c)
		took := time.Since(start)
		t.Logf("gave up after %v: %v", took, err)
		require.ErrorIs(t, err, metric.ErrNotConnected)
		require.ErrorContains(t, err, "i/o timeout")
		require.GreaterOrEqual(t, took, timeout)
		require.Less(t, took, 2*timeout, "bounded in total (in turn: 6 × 600 ms)")
	})

	t.Run("writes do not wait for the dial", func(t *testing.T) {
		c := newConn(t, ConnConfig{Address: "@carbon", Resolver: resolving(holes...), ConnectTimeout: 2 * time.Second})
		require.NoError(t, c.Connect(context.Background()))
		start := time.Now()
		for range 100 {
			err := c.Write(context.Background(), []byte("x"))
			require.ErrorIs(t, err, metric.ErrNotConnected)
			require.ErrorContains(t, err, "connecting")
		}
		require.Less(t, time.Since(start), time.Second, "100 writes while the dial runs for 2 s")
	})

	t.Run("more addresses than stagger steps in the timeout", func(t *testing.T) {
		ln := listen(t)
		many := append(append(append([]string(nil), holes...), holes...), ln.Addr().String()) // 13 addresses
		const timeout = time.Second                                                           // 4 steps of 250 ms: too few for 13
		c := newConn(t, ConnConfig{Address: "@carbon", Resolver: resolving(many...), ConnectTimeout: timeout})
		start := time.Now()
		require.NoError(t, connectNow(t, c), "the stagger shrinks so that the last address is tried too")
		require.Less(t, time.Since(start), timeout)
	})
}
