// Package status serves shovel's operational endpoints: /metrics for
// Prometheus, /healthz (the process is alive) and /readyz (it can do its
// job), each readiness failure named in a small JSON body.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Checks reports each part's readiness ("kafka", "output graphite"): ""
// when ready, else why not. It is called per request, so the parts can
// change, as outputs do on a configuration reload.
type Checks func() map[string]string

// Report is /readyz's body.
type Report struct {
	Ready    bool              `json:"ready"`
	NotReady map[string]string `json:"not_ready,omitempty"`
}

// Evaluate runs every check.
func (c Checks) Evaluate() Report {
	rep := Report{Ready: true}
	parts := c()
	names := make([]string, 0, len(parts))
	for n := range parts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if why := parts[n]; why != "" {
			if rep.NotReady == nil {
				rep.NotReady = map[string]string{}
			}
			rep.NotReady[n] = why
			rep.Ready = false
		}
	}
	return rep
}

// Handler serves the three endpoints.
func Handler(gatherer prometheus.Gatherer, checks Checks) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"alive": true})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		rep := checks.Evaluate()
		code := http.StatusOK
		if !rep.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, rep)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Server runs Handler on an address until Close.
type Server struct {
	srv *http.Server
	ln  *connLimiter
}

// limits bound what clients of the status server can make it hold. Its
// clients are a Prometheus scraper and a few probes, each sending a small
// GET: anything slower or bigger is not one of them.
type limits struct {
	readHeader, read, write, idle time.Duration
	maxHeaderBytes                int
	maxConns                      int
}

// defaultLimits are documented in docs/limits.md. The idle timeout is
// longer than the usual scrape intervals (15–60 s), so that a scraper
// keeps its connection; the write timeout leaves a slow link time for a
// large /metrics page.
var defaultLimits = limits{
	readHeader:     5 * time.Second,
	read:           10 * time.Second,
	write:          30 * time.Second,
	idle:           90 * time.Second,
	maxHeaderBytes: 16 << 10,
	maxConns:       64,
}

// Listen binds addr (the config's default is loopback: these endpoints
// expose internals and are not meant for the open network).
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	return listen(addr, h, log, defaultLimits)
}

func listen(addr string, h http.Handler, log *slog.Logger, lim limits) (*Server, error) {
	inner, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("status: listen %s: %w", addr, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln := newConnLimiter(inner, lim.maxConns)
	s := &Server{ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    lim.maxHeaderBytes,
		ConnState:         ln.track,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("status server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close shuts the server down.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }
