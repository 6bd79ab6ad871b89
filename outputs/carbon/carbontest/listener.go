package carbontest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// Sample is one datapoint as a Carbon receiver saw it.
type Sample struct {
	Path  string
	Time  float64
	Value float64
}

// Listener is a Carbon receiver for tests that must see every sample
// exactly as sent (the real carbon-cache rounds timestamps to its
// retention and keeps one value per slot). It speaks the pickle protocol
// (4-byte big-endian length + pickled list of (path, (ts, value))) or the
// plaintext protocol ("path value ts\n" lines), on 127.0.0.1:0 or a given
// address, and decodes pickles with gopickle as Carbon's own receiver does.
type Listener struct {
	pickle bool
	srv    *Server

	mu      sync.Mutex
	samples []Sample
	errs    []error
}

// ListenPickle starts a pickle receiver on a free loopback port.
func ListenPickle(t testing.TB) *Listener { return listen(t, true, "127.0.0.1:0") }

// ListenPlaintext starts a plaintext receiver on a free loopback port.
func ListenPlaintext(t testing.TB) *Listener { return listen(t, false, "127.0.0.1:0") }

// ListenPickleAt starts a pickle receiver at addr, for a restart on the same port.
func ListenPickleAt(t testing.TB, addr string) *Listener { return listen(t, true, addr) }

// ListenPlaintextAt starts a plaintext receiver at addr, for a restart on the same port.
func ListenPlaintextAt(t testing.TB, addr string) *Listener { return listen(t, false, addr) }

func listen(t testing.TB, isPickle bool, addr string) *Listener {
	return listenWrapped(t, isPickle, addr, nil)
}

// listenWrapped is listen with wrap, when not nil, applied to the
// listener (tls.go uses it for TLS).
func listenWrapped(t testing.TB, isPickle bool, addr string, wrap func(net.Listener) net.Listener) *Listener {
	t.Helper()
	var ln net.Listener
	var err error
	// A just-closed port can take a moment to be free again.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("carbontest: listen %s: %v", addr, err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	l := &Listener{pickle: isPickle}
	l.srv = Serve(ln, l.read)
	t.Cleanup(l.Close)
	return l
}

// Addr is the listener's "127.0.0.1:port".
func (l *Listener) Addr() string { return l.srv.Addr().String() }

// Close stops accepting and drops every connection.
func (l *Listener) Close() { l.srv.Close() }

// read decodes one connection, keeping what it cannot read as an error.
func (l *Listener) read(c net.Conn) {
	var err error
	if l.pickle {
		err = l.readPickle(c)
	} else {
		err = l.readPlaintext(c)
	}
	if err != nil {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	}
}

func (l *Listener) add(s []Sample) {
	l.mu.Lock()
	l.samples = append(l.samples, s...)
	l.mu.Unlock()
}

// MaxFrame is Carbon's limit (carbon/protocols.py MAX_LENGTH): a longer
// frame makes Carbon drop the connection, so the listener reports it.
const MaxFrame = 1 << 20

func (l *Listener) readPickle(c net.Conn) error {
	r := bufio.NewReaderSize(c, 256<<10)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil // peer closed between frames: normal
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > MaxFrame {
			return fmt.Errorf("carbontest: pickle frame of %d bytes exceeds Carbon's %d", n, MaxFrame)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil // cut mid-frame: Carbon drops the partial frame too
		}
		s, err := DecodePickle(buf)
		if err != nil {
			return err
		}
		l.add(s)
	}
}

func (l *Listener) readPlaintext(c net.Conn) error {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			return fmt.Errorf("carbontest: bad plaintext line %q", sc.Text())
		}
		v, err1 := strconv.ParseFloat(f[1], 64)
		ts, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("carbontest: bad plaintext line %q", sc.Text())
		}
		l.add([]Sample{{Path: f[0], Time: ts, Value: v}})
	}
	return nil
}

// DecodePickle decodes one pickle payload (without its length prefix) into
// samples, accepting only a list of (path, (ts, value)) as Carbon does.
func DecodePickle(payload []byte) (out []Sample, err error) {
	defer func() {
		if p := recover(); p != nil { // gopickle can panic on crafted input
			err = fmt.Errorf("carbontest: gopickle panic: %v", p)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(payload))
	v, err := u.Load()
	if err != nil {
		return nil, fmt.Errorf("carbontest: unpickle: %w", err)
	}
	list, ok := v.(*types.List)
	if !ok {
		return nil, fmt.Errorf("carbontest: pickle is a %T, not a list", v)
	}
	for i := 0; i < list.Len(); i++ {
		item, ok := list.Get(i).(*types.Tuple)
		if !ok || item.Len() != 2 {
			return nil, fmt.Errorf("carbontest: item %d is %T, not a (path, (ts, value)) tuple", i, list.Get(i))
		}
		path, ok := item.Get(0).(string)
		point, ok2 := item.Get(1).(*types.Tuple)
		if !ok || !ok2 || point.Len() != 2 {
			return nil, fmt.Errorf("carbontest: item %d has the wrong shape", i)
		}
		ts, err1 := number(point.Get(0))
		val, err2 := number(point.Get(1))
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("carbontest: item %d: %v %v", i, err1, err2)
		}
		out = append(out, Sample{Path: path, Time: ts, Value: val})
	}
	return out, nil
}

func number(v any) (float64, error) {
	switch n := v.(type) {
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	case float64:
		return n, nil
	case bool:
		if n {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%T is not a number", v)
}

// Samples returns a copy of everything received so far, in arrival order.
func (l *Listener) Samples() []Sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Sample(nil), l.samples...)
}

// Len is the number of samples received so far.
func (l *Listener) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.samples)
}

// Errors returns protocol errors seen so far (bad frames, bad lines).
func (l *Listener) Errors() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}
