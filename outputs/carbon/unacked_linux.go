//go:build linux

package carbon

import (
	"crypto/tls"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ackProbe asks the kernel how many bytes written to one connection the
// peer has not acknowledged yet (SIOCOUTQ). It is made once per connection
// and allocates nothing per call.
type ackProbe struct {
	raw  syscall.RawConn
	n    int
	err  error
	call func(fd uintptr)
}

func newAckProbe(conn net.Conn) *ackProbe {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &ackProbe{raw: raw}
	p.call = func(fd uintptr) { p.n, p.err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }
	return p
}

// unacked returns the unacknowledged byte count, and whether it could tell.
func (p *ackProbe) unacked() (int, bool) {
	if p == nil {
		return 0, false
	}
	if err := p.raw.Control(p.call); err != nil || p.err != nil {
		return 0, false
	}
	return p.n, true
}
