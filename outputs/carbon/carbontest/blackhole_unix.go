//go:build unix

package carbontest

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BlackHole returns a loopback address whose connection attempts hang, as
// they do to a host behind a firewall that drops packets: a listening
// socket that never accepts, its accept queue full, so that the kernel
// drops every further SYN. It is closed when the test ends.
func BlackHole(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("black hole: socket: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("black hole: bind: %v", err)
	}
	// Backlog 0: the queue is full after one or two connections.
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("black hole: listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("black hole: getsockname: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for range 16 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // this one hung: the queue is full
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	t.Fatalf("black hole: %s kept accepting connections", addr)
	return ""
}
