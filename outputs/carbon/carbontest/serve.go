package carbontest

import (
	"net"
	"sync"
)

// Server accepts connections on a listener and runs a handler for each in
// its own goroutine, until Close. It is what the test receivers here, the
// fault tests' listeners and the benchmark's receiver have in common.
type Server struct {
	ln     net.Listener
	handle func(net.Conn)

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup

	accepted func() // a test's hook between Accept and registering the connection
}

// Serve starts accepting on ln. handle runs once per connection and the
// connection is closed when it returns; it should return when a read
// fails, which Close makes happen.
func Serve(ln net.Listener, handle func(net.Conn)) *Server {
	return serve(ln, handle, nil)
}

func serve(ln net.Listener, handle func(net.Conn), accepted func()) *Server {
	s := &Server{ln: ln, handle: handle, conns: map[net.Conn]struct{}{}, accepted: accepted}
	s.wg.Add(1)
	go s.accept()
	return s
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, closes every connection and waits for their
// handlers. It may be called more than once.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if s.accepted != nil {
			s.accepted()
		}
		s.mu.Lock()
		if s.closed {
			// Accepted just before Close closed the listener but
			// registered after it closed the others: without this it
			// would be read forever and Close would never return.
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.handle(c)
		}()
	}
}
