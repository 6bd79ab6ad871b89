package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
)

// maxPickleFrame is Carbon's limit (MAX_LENGTH in carbon/protocols.py).
const maxPickleFrame = 1 << 20

// receiver is a Carbon pickle listener that checks every sample against the
// workload and counts, per message, how many of its samples arrived.
type receiver struct {
	w   *workload
	srv *carbontest.Server

	perMsg   []atomic.Uint32 // samples received per message index
	complete atomic.Int64    // messages whose every sample arrived (once)
	total    atomic.Int64    // samples received, duplicates included
	wrong    atomic.Int64    // samples that were never sent
	first    atomic.Int64    // unix ns of the first frame
	last     atomic.Int64    // unix ns of the latest frame
	// firstAfter is the unix ns of the first frame since it was last
	// zeroed (-outage: since Carbon came back).
	firstAfter atomic.Int64
	doneAt     []atomic.Int64 // unix ns each message completed; set only for -trickle

	mu       sync.Mutex
	examples []string // the first few wrong samples and protocol errors
}

func newReceiver(w *workload) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: listen: %w", err)
	}
	r := &receiver{w: w, perMsg: make([]atomic.Uint32, w.messages)}
	r.srv = carbontest.Serve(ln, r.serve)
	return r, nil
}

func (r *receiver) addr() string { return r.srv.Addr().String() }

// close stops listening and drops every connection: Carbon going away.
func (r *receiver) close() { r.srv.Close() }

func (r *receiver) note(format string, args ...any) {
	r.mu.Lock()
	if len(r.examples) < 10 {
		r.examples = append(r.examples, fmt.Sprintf(format, args...))
	}
	r.mu.Unlock()
}

func (r *receiver) serve(c net.Conn) {
	if err := r.read(c); err != nil {
		r.wrong.Add(1)
		r.note("connection %s: %v", c.RemoteAddr(), err)
	}
}

func (r *receiver) read(c net.Conn) error {
	br := bufio.NewReaderSize(c, 256<<10)
	buf := make([]byte, 0, maxPickleFrame)
	var hdr [4]byte
	samples := r.w.samples
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil // closed between frames
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxPickleFrame {
			return fmt.Errorf("frame of %d bytes exceeds Carbon's %d", n, maxPickleFrame)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			if err == io.ErrUnexpectedEOF {
				return fmt.Errorf("connection cut mid-frame")
			}
			return nil
		}
		now := time.Now().UnixNano()
		r.first.CompareAndSwap(0, now)
		r.firstAfter.CompareAndSwap(0, now)
		r.last.Store(now)
		var wrong int64
		got, err := decodePickleFrame(buf, func(path []byte, ts, val float64) {
			i, why := r.w.check(path, ts, val)
			if i < 0 {
				wrong++
				r.note("sample %q %v %v: %s", path, ts, val, why)
				return
			}
			if int(r.perMsg[i].Add(1)) == samples {
				r.complete.Add(1)
				if r.doneAt != nil {
					r.doneAt[i].Store(now)
				}
			}
		})
		r.total.Add(int64(got))
		r.wrong.Add(wrong)
		if err != nil {
			return err
		}
	}
}

// verdict is what the receiver saw, checked against the workload.
type verdict struct {
	received   int64 // samples, duplicates included
	missing    int   // good messages with no sample at all
	partial    int   // good messages with some of their samples missing
	duplicated int   // good messages with samples that arrived more than once (at-least-once allows it)
	wrong      int64 // samples never sent (or from rejected messages)
	examples   []string
}

func (v verdict) ok() bool { return v.missing == 0 && v.partial == 0 && v.wrong == 0 }

func (r *receiver) verdict() verdict {
	v := verdict{received: r.total.Load(), wrong: r.wrong.Load()}
	s := uint32(r.w.samples)
	for i := range r.perMsg {
		if r.w.isBad(i) {
			continue // its samples, if any, were counted as wrong
		}
		switch n := r.perMsg[i].Load(); {
		case n == 0:
			v.missing++
		case n < s:
			v.partial++
		case n > s:
			v.duplicated++
		}
	}
	r.mu.Lock()
	v.examples = append(v.examples, r.examples...)
	r.mu.Unlock()
	return v
}

// reset forgets everything received, for the next run on the same workload.
func (r *receiver) reset() {
	for i := range r.perMsg {
		r.perMsg[i].Store(0)
	}
	r.complete.Store(0)
	r.total.Store(0)
	r.wrong.Store(0)
	r.first.Store(0)
	r.last.Store(0)
	r.mu.Lock()
	r.examples = nil
	r.mu.Unlock()
}
