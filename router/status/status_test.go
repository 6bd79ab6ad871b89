package status

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(3)
	why := "not yet"
	h := Handler(reg, func() map[string]string { return map[string]string{"kafka": why, "output a": ""} })

	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	var rep Report
	require.NoError(t, json.Unmarshal([]byte(body), &rep))
	require.Equal(t, Report{Ready: false, NotReady: map[string]string{"kafka": "not yet"}}, rep)

	why = ""
	code, body = get("/readyz")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"ready":true}`, body)

	code, _ = get("/healthz")
	require.Equal(t, http.StatusOK, code)
	code, body = get("/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "x_total 3")
}

// keepAlive opens a connection to addr, makes one request on it and leaves
// it open, idle, as a keep-alive client would.
func keepAlive(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return c
}

// closedByServer reports whether the server has closed c, waiting up to d.
func closedByServer(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func TestServerLimits(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := Handler(reg, func() map[string]string { return nil })
	start := func(t *testing.T, lim limits) *Server {
		srv, err := listen("127.0.0.1:0", h, nil, lim)
		require.NoError(t, err)
		t.Cleanup(func() { srv.Close(context.Background()) })
		return srv
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	scrape := func(t *testing.T, srv *Server) {
		t.Helper()
		resp, err := client.Get("http://" + srv.Addr() + "/metrics")
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}

	t.Run("idle keep-alive connections are capped", func(t *testing.T) {
		lim := defaultLimits
		lim.maxConns = 8
		srv := start(t, lim)
		var conns []net.Conn
		for range 40 {
			conns = append(conns, keepAlive(t, srv.Addr()))
			require.LessOrEqual(t, srv.ln.open(), lim.maxConns)
		}
		began := time.Now()
		scrape(t, srv)
		require.Less(t, time.Since(began), time.Second, "a scrape does not wait for an idle connection to time out")
		require.LessOrEqual(t, srv.ln.open(), lim.maxConns)
		closed := 0
		for _, c := range conns {
			if closedByServer(c, 100*time.Millisecond) {
				closed++
			}
		}
		require.GreaterOrEqual(t, closed, len(conns)-lim.maxConns, "the oldest idle connections made room")
	})

	t.Run("silent connections are capped", func(t *testing.T) {
		lim := defaultLimits
		lim.maxConns = 8
		srv := start(t, lim)
		for range 40 {
			c, err := net.Dial("tcp", srv.Addr())
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
		}
		scrape(t, srv)
		require.LessOrEqual(t, srv.ln.open(), lim.maxConns)
	})

	t.Run("timeouts", func(t *testing.T) {
		lim := defaultLimits
		lim.idle, lim.readHeader = 200*time.Millisecond, 200*time.Millisecond
		srv := start(t, lim)
		idle := keepAlive(t, srv.Addr())
		silent, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		defer silent.Close()
		slow, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		defer slow.Close()
		_, err = slow.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n"))
		require.NoError(t, err)
		require.True(t, closedByServer(idle, 5*time.Second), "idle keep-alive connection closed")
		require.True(t, closedByServer(silent, 5*time.Second), "connection that never sends closed")
		require.True(t, closedByServer(slow, 5*time.Second), "connection that never finishes its header closed")
		require.Eventually(t, func() bool { return srv.ln.open() == 0 }, 5*time.Second, 10*time.Millisecond, "slots given back")
		scrape(t, srv)
	})

	t.Run("header size", func(t *testing.T) {
		srv := start(t, defaultLimits)
		req, err := http.NewRequest(http.MethodGet, "http://"+srv.Addr()+"/metrics", nil)
		require.NoError(t, err)
		req.Header.Set("X-Big", strings.Repeat("a", 2*defaultLimits.maxHeaderBytes))
		resp, err := client.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	})
}
