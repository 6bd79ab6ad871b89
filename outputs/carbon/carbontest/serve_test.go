package carbontest

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServerCloseRacingAccept: a connection accepted just before Close
// closes the listener, but registered only after Close has closed the
// others, is dropped, not read forever (Close would never return: CI hung
// on it once).
func TestServerCloseRacingAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	inAccept, release := make(chan struct{}), make(chan struct{})
	srv := serve(ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }, func() {
		close(inAccept)
		<-release
	})
	c, err := net.Dial("tcp", srv.Addr().String())
	require.NoError(t, err)
	defer c.Close() // the client never hangs up
	<-inAccept

	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	time.Sleep(20 * time.Millisecond) // Close has closed what was registered and waits
	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return: the late connection is being read")
	}
}

// TestServerCloseDropsConnections: Close closes the connections being read.
func TestServerCloseDropsConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	reading := make(chan struct{}, 1)
	srv := Serve(ln, func(c net.Conn) {
		reading <- struct{}{}
		_, _ = io.Copy(io.Discard, c)
	})
	c, err := net.Dial("tcp", srv.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	<-reading
	srv.Close()
	_, err = net.DialTimeout("tcp", srv.Addr().String(), time.Second)
	require.Error(t, err, "nothing listens after Close")
}

func TestBlackHoleHangs(t *testing.T) {
	addr := BlackHole(t)
	for range 3 {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err == nil {
			c.Close()
		}
		require.Error(t, err, "a connection got through")
		require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "refused, not dropped")
	}
}
