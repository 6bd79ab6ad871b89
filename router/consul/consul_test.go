// No Consul server can be installed where these tests run, so they talk to
// fakeConsul: an httptest server on 127.0.0.1 that answers the one endpoint
// the resolver uses exactly as Consul's documented health API does —
// GET /v1/health/service/<name>, filtered to entries whose every check is
// passing when ?passing is given, an empty JSON array for an unknown
// service, the JSON array of {"Node", "Service", "Checks"} entries in
// Consul's field names, the X-Consul-Index, X-Consul-Knownleader and
// X-Consul-Lastcontact headers, 403 "ACL not found" for a wrong token and
// 500 "No path to datacenter" for an unknown dc. Its JSON is written from
// its own structs, not from the client library's, so a field the client
// expects under another name would show up here.
package consul

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Consul's JSON, as in the health API's sample response.
type (
	consulEntry struct {
		Node    consulNode
		Service consulService
		Checks  []consulCheck
	}
	consulNode struct {
		ID              string
		Node            string
		Address         string
		Datacenter      string
		TaggedAddresses map[string]string
		Meta            map[string]string
		CreateIndex     uint64
		ModifyIndex     uint64
	}
	consulService struct {
		ID                string
		Service           string
		Tags              []string
		Address           string
		Meta              map[string]string
		Port              int
		Weights           map[string]int
		EnableTagOverride bool
		Namespace         string
		CreateIndex       uint64
		ModifyIndex       uint64
	}
	consulCheck struct {
		Node        string
		CheckID     string
		Name        string
		Status      string
		Notes       string
		Output      string
		ServiceID   string
		ServiceName string
		ServiceTags []string
		Type        string
		Namespace   string
		CreateIndex uint64
		ModifyIndex uint64
	}
)

// instance describes one registration for fakeConsul.
type instance struct {
	node, nodeAddr string
	svcAddr        string
	port           int
	status         string // of the service check; the node's serfHealth always passes
}

func (in instance) entry(service string) consulEntry {
	id := service + "-" + in.node
	return consulEntry{
		Node: consulNode{
			ID: "40e4a748-2192-161a-0510-9bf59fe950b5", Node: in.node, Address: in.nodeAddr,
			Datacenter: "dc1", TaggedAddresses: map[string]string{"lan": in.nodeAddr, "wan": in.nodeAddr},
			Meta: map[string]string{"consul-network-segment": ""}, CreateIndex: 5, ModifyIndex: 5,
		},
		Service: consulService{
			ID: id, Service: service, Tags: []string{}, Address: in.svcAddr, Meta: map[string]string{},
			Port: in.port, Weights: map[string]int{"Passing": 1, "Warning": 1}, Namespace: "default",
			CreateIndex: 7, ModifyIndex: 7,
		},
		Checks: []consulCheck{
			{Node: in.node, CheckID: "serfHealth", Name: "Serf Health Status", Status: "passing",
				Output: "Agent alive and reachable", ServiceTags: []string{}, Namespace: "default", CreateIndex: 5, ModifyIndex: 5},
			{Node: in.node, CheckID: "service:" + id, Name: "Service '" + service + "' check", Status: in.status,
				ServiceID: id, ServiceName: service, ServiceTags: []string{}, Type: "tcp", Namespace: "default",
				CreateIndex: 7, ModifyIndex: 7},
		},
	}
}

// fakeConsul is a stand-in for a Consul agent's HTTP API.
type fakeConsul struct {
	srv   *httptest.Server
	token string // required X-Consul-Token, if not empty

	mu       sync.Mutex
	services map[string][]instance
	failWith int  // answer every request with this status and Consul's no-leader body
	hang     bool // answer nothing until the client gives up
	requests []*http.Request
	index    int
}

func newFakeConsul(t *testing.T) *fakeConsul {
	t.Helper()
	f := &fakeConsul{services: map[string][]instance{}, index: 10}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// addr is the agent's address as an operator would configure it.
func (f *fakeConsul) addr() string { return f.srv.Listener.Addr().String() }

func (f *fakeConsul) set(service string, instances ...instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.services[service] = instances
	f.index++
}

func (f *fakeConsul) fail(status int, hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failWith, f.hang = status, hang
}

func (f *fakeConsul) lastRequest(t *testing.T) *http.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.requests, "Consul was never asked")
	return f.requests[len(f.requests)-1]
}

func (f *fakeConsul) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(context.Background()))
	failWith, hang := f.failWith, f.hang
	f.mu.Unlock()

	if hang {
		<-r.Context().Done()
		return
	}
	if failWith != 0 {
		http.Error(w, "No cluster leader", failWith)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/v1/health/service/")
	if !ok || name == "" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method "+r.Method+" not allowed", http.StatusMethodNotAllowed)
		return
	}
	if f.token != "" && r.Header.Get("X-Consul-Token") != f.token {
		http.Error(w, "ACL not found", http.StatusForbidden)
		return
	}
	q := r.URL.Query()
	if dc := q.Get("dc"); dc != "" && dc != "dc1" && dc != "dc2" {
		http.Error(w, "No path to datacenter", http.StatusInternalServerError)
		return
	}
	passingOnly := q.Has("passing") && q.Get("passing") != "false" && q.Get("passing") != "0"

	f.mu.Lock()
	entries := []consulEntry{} // an unknown service is an empty array, not null
	for _, in := range f.services[name] {
		e := in.entry(name)
		if passingOnly && !allPassing(e.Checks) {
			continue
		}
		entries = append(entries, e)
	}
	index := f.index
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Vary", "Accept-Encoding")
	w.Header().Set("X-Consul-Default-Acl-Policy", "allow")
	w.Header().Set("X-Consul-Effective-Consistency", "leader")
	w.Header().Set("X-Consul-Index", strconv.Itoa(index))
	w.Header().Set("X-Consul-Knownleader", "true")
	w.Header().Set("X-Consul-Lastcontact", "0")
	_ = json.NewEncoder(w).Encode(entries)
}

func allPassing(checks []consulCheck) bool {
	for _, c := range checks {
		if c.Status != "passing" {
			return false
		}
	}
	return true
}

// newTestResolver builds a resolver with Consul's environment variables
// cleared, so that a developer's CONSUL_HTTP_TOKEN cannot leak into a test.
func newTestResolver(t *testing.T, cfg Config, log *bytes.Buffer) *Resolver {
	t.Helper()
	for _, v := range []string{"CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_ADDR", "CONSUL_HTTP_SSL"} {
		t.Setenv(v, "")
	}
	var logger *slog.Logger
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := New(cfg, logger)
	require.NoError(t, err)
	return r
}

func configFor(f *fakeConsul) Config {
	cfg := DefaultConfig()
	cfg.Address = f.addr()
	cfg.Timeout = 2 * time.Second
	return cfg
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name      string
		instances []instance
		want      []string
		wantErr   string // %s is Consul's address
	}{
		{
			name: "two healthy instances",
			instances: []instance{
				{node: "carbon-1", nodeAddr: "127.0.0.11", svcAddr: "127.0.0.21", port: 2004, status: "passing"},
				{node: "carbon-2", nodeAddr: "127.0.0.12", svcAddr: "127.0.0.22", port: 2004, status: "passing"},
			},
			want: []string{"127.0.0.21:2004", "127.0.0.22:2004"},
		},
		{
			name: "empty service address means the node's address",
			instances: []instance{
				{node: "carbon-1", nodeAddr: "127.0.0.11", svcAddr: "", port: 2004, status: "passing"},
				{node: "carbon-2", nodeAddr: "127.0.0.12", svcAddr: "127.0.0.22", port: 2104, status: "passing"},
			},
			want: []string{"127.0.0.11:2004", "127.0.0.22:2104"},
		},
		{
			name: "only passing instances",
			instances: []instance{
				{node: "carbon-1", nodeAddr: "127.0.0.11", port: 2004, status: "critical"},
				{node: "carbon-2", nodeAddr: "127.0.0.12", port: 2004, status: "passing"},
				{node: "carbon-3", nodeAddr: "127.0.0.13", port: 2004, status: "warning"},
			},
			want: []string{"127.0.0.12:2004"},
		},
		{
			name: "IPv6 hosts are bracketed",
			instances: []instance{
				{node: "carbon-1", nodeAddr: "127.0.0.11", svcAddr: "::1", port: 2004, status: "passing"},
				{node: "carbon-2", nodeAddr: "fd00::12", svcAddr: "", port: 2104, status: "passing"},
			},
			want: []string{"[::1]:2004", "[fd00::12]:2104"},
		},
		{
			name: "duplicate registrations collapse",
			instances: []instance{
				{node: "carbon-1", nodeAddr: "127.0.0.11", port: 2004, status: "passing"},
				{node: "carbon-1b", nodeAddr: "127.0.0.11", port: 2004, status: "passing"},
			},
			want: []string{"127.0.0.11:2004"},
		},
		{
			name: "none healthy",
			instances: []instance{
				{node: "carbon-1", nodeAddr: "127.0.0.11", port: 2004, status: "critical"},
			},
			wantErr: `consul: no healthy instance of service "kafka" at %s`,
		},
		{
			name:    "unknown service",
			wantErr: `consul: no healthy instance of service "kafka" at %s`,
		},
		{
			name: "instance without a port cannot be dialled",
			instances: []instance{
				{node: "carbon-1", nodeAddr: "127.0.0.11", port: 0, status: "passing"},
			},
			wantErr: `consul: no healthy instance of service "kafka" at %s`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeConsul(t)
			f.set("kafka", tt.instances...)
			r := newTestResolver(t, configFor(f), nil)

			got, err := r.Resolve(context.Background(), "kafka")

			req := f.lastRequest(t)
			require.Equal(t, "/v1/health/service/kafka", req.URL.Path)
			require.Equal(t, "1", req.URL.Query().Get("passing"))
			if tt.wantErr != "" {
				require.EqualError(t, err, fmt.Sprintf(tt.wantErr, f.addr()))
				require.ErrorIs(t, err, ErrNoHealthyInstance)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestResolveSendsTokenAndDatacenter(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("file-secret-5678\n"), 0o600))

	tests := []struct {
		name      string
		token     string
		tokenFile string
		dc        string
		wantToken string
	}{
		{name: "nothing configured"},
		{name: "token", token: "secret-1234", wantToken: "secret-1234"},
		{name: "token file, trailing newline trimmed", tokenFile: tokenFile, wantToken: "file-secret-5678"},
		{name: "datacenter", dc: "dc2"},
		{name: "token and datacenter", token: "secret-1234", dc: "dc2", wantToken: "secret-1234"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeConsul(t)
			f.token = tt.wantToken
			f.set("carbon", instance{node: "n1", nodeAddr: "127.0.0.11", port: 2004, status: "passing"})
			cfg := configFor(f)
			cfg.Token, cfg.TokenFile, cfg.Datacenter = tt.token, tt.tokenFile, tt.dc
			var log bytes.Buffer
			r := newTestResolver(t, cfg, &log)

			got, err := r.Resolve(context.Background(), "carbon")
			require.NoError(t, err)
			require.Equal(t, []string{"127.0.0.11:2004"}, got)

			req := f.lastRequest(t)
			require.Equal(t, tt.wantToken, req.Header.Get("X-Consul-Token"))
			require.Equal(t, "1", req.URL.Query().Get("passing"))
			require.Equal(t, tt.dc, req.URL.Query().Get("dc"))
			require.Equal(t, tt.dc != "", req.URL.Query().Has("dc"))
			// The token travels only in the header.
			if tt.wantToken != "" {
				require.NotContains(t, req.URL.String(), tt.wantToken)
			}
		})
	}
}

func TestResolveWrongTokenOrDatacenter(t *testing.T) {
	f := newFakeConsul(t)
	f.token = "right-token"
	f.set("carbon", instance{node: "n1", nodeAddr: "127.0.0.11", port: 2004, status: "passing"})

	t.Run("wrong token", func(t *testing.T) {
		cfg := configFor(f)
		cfg.Token = "wrong-token-9999"
		_, err := newTestResolver(t, cfg, nil).Resolve(context.Background(), "carbon")
		require.ErrorContains(t, err, `consul: resolve service "carbon" at `+f.addr())
		require.ErrorContains(t, err, "403 (ACL not found)")
		require.NotContains(t, err.Error(), "wrong-token-9999")
	})
	t.Run("unknown datacenter", func(t *testing.T) {
		cfg := configFor(f)
		cfg.Token, cfg.Datacenter = "right-token", "mars"
		_, err := newTestResolver(t, cfg, nil).Resolve(context.Background(), "carbon")
		require.ErrorContains(t, err, `consul: resolve service "carbon" at `+f.addr())
		require.ErrorContains(t, err, "No path to datacenter")
	})
}

func TestResolveUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	for _, address := range []string{addr, "http://" + addr} {
		t.Run(address, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Address = address
			got, err := newTestResolver(t, cfg, nil).Resolve(context.Background(), "kafka")
			require.Nil(t, got)
			require.ErrorContains(t, err, `consul: resolve service "kafka" at `+address+": ")
			require.ErrorContains(t, err, "connection refused")
			require.NotErrorIs(t, err, ErrNoHealthyInstance)
		})
	}
}

// fakeClock lets a test move the resolver's idea of now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestResolveFlappingKeepsLastGood(t *testing.T) {
	tests := []struct {
		name        string
		breakConsul func(f *fakeConsul)
		want        string // in the warning
	}{
		{name: "500 no leader", breakConsul: func(f *fakeConsul) { f.fail(http.StatusInternalServerError, false) }, want: "No cluster leader"},
		{name: "503 from a proxy", breakConsul: func(f *fakeConsul) { f.fail(http.StatusServiceUnavailable, false) }, want: "503"},
		{name: "hangs past the timeout", breakConsul: func(f *fakeConsul) { f.fail(0, true) }, want: "context deadline exceeded"},
		{name: "gone", breakConsul: func(f *fakeConsul) { f.srv.CloseClientConnections(); f.srv.Close() }, want: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeConsul(t)
			f.set("carbon",
				instance{node: "n1", nodeAddr: "127.0.0.11", port: 2004, status: "passing"},
				instance{node: "n2", nodeAddr: "127.0.0.12", port: 2004, status: "passing"})
			cfg := configFor(f)
			cfg.Token = "secret-token-4242"
			cfg.Timeout = 200 * time.Millisecond
			var log bytes.Buffer
			r := newTestResolver(t, cfg, &log)
			clock := &fakeClock{t: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
			r.now = clock.now
			want := []string{"127.0.0.11:2004", "127.0.0.12:2004"}

			got, err := r.Resolve(context.Background(), "carbon")
			require.NoError(t, err)
			require.Equal(t, want, got)
			got[0] = "mutated by the caller"

			tt.breakConsul(f)
			for range 3 {
				got, err = r.Resolve(context.Background(), "carbon")
				require.NoError(t, err)
				require.Equal(t, want, got)
			}
			require.Equal(t, 1, strings.Count(log.String(), "level=WARN"), "warnings are rate-limited:\n%s", log.String())
			require.Contains(t, log.String(), "using last known addresses")
			require.Contains(t, log.String(), tt.want)
			require.Contains(t, log.String(), f.addr())

			clock.t = clock.t.Add(warnEvery)
			_, err = r.Resolve(context.Background(), "carbon")
			require.NoError(t, err)
			require.Equal(t, 2, strings.Count(log.String(), "level=WARN"), log.String())
			require.Contains(t, log.String(), "failed_lookups=4")

			// Another service was never resolved: its failure is an error.
			_, err = r.Resolve(context.Background(), "kafka")
			require.ErrorContains(t, err, `consul: resolve service "kafka" at `+f.addr())

			require.NotContains(t, log.String(), "secret-token-4242")
		})
	}
}

func TestResolveRecovers(t *testing.T) {
	f := newFakeConsul(t)
	f.set("carbon", instance{node: "n1", nodeAddr: "127.0.0.11", port: 2004, status: "passing"})
	var log bytes.Buffer
	r := newTestResolver(t, configFor(f), &log)

	_, err := r.Resolve(context.Background(), "carbon")
	require.NoError(t, err)
	f.fail(http.StatusInternalServerError, false)
	_, err = r.Resolve(context.Background(), "carbon")
	require.NoError(t, err)

	// Consul is back, and the service has moved.
	f.fail(0, false)
	f.set("carbon", instance{node: "n2", nodeAddr: "127.0.0.12", port: 2104, status: "passing"})
	got, err := r.Resolve(context.Background(), "carbon")
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.12:2104"}, got)
	require.Contains(t, log.String(), "consul lookups recovered")

	// A fresh failure warns again at once.
	f.fail(http.StatusInternalServerError, false)
	got, err = r.Resolve(context.Background(), "carbon")
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.12:2104"}, got)
	require.Equal(t, 2, strings.Count(log.String(), "level=WARN"), log.String())
}

func TestResolveNoHealthyForgetsLastGood(t *testing.T) {
	f := newFakeConsul(t)
	f.set("carbon", instance{node: "n1", nodeAddr: "127.0.0.11", port: 2004, status: "passing"})
	r := newTestResolver(t, configFor(f), nil)

	_, err := r.Resolve(context.Background(), "carbon")
	require.NoError(t, err)

	f.set("carbon", instance{node: "n1", nodeAddr: "127.0.0.11", port: 2004, status: "critical"})
	_, err = r.Resolve(context.Background(), "carbon")
	require.ErrorIs(t, err, ErrNoHealthyInstance)

	// Consul said the instance is unhealthy; a later outage must not bring it back.
	f.fail(http.StatusInternalServerError, false)
	got, err := r.Resolve(context.Background(), "carbon")
	require.Nil(t, got)
	require.ErrorContains(t, err, `consul: resolve service "carbon" at `+f.addr())
}

func TestResolveCallerCancelled(t *testing.T) {
	f := newFakeConsul(t)
	f.set("carbon", instance{node: "n1", nodeAddr: "127.0.0.11", port: 2004, status: "passing"})
	r := newTestResolver(t, configFor(f), nil)
	_, err := r.Resolve(context.Background(), "carbon")
	require.NoError(t, err)

	f.fail(0, true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	got, err := r.Resolve(ctx, "carbon")
	require.Nil(t, got, "a caller that gives up gets no stale addresses")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestResolveTrimsLongErrorBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>"+strings.Repeat("x", 10000)+"</html>", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	cfg := DefaultConfig()
	cfg.Address = srv.URL
	_, err := newTestResolver(t, cfg, nil).Resolve(context.Background(), "carbon")
	require.ErrorContains(t, err, "502")
	require.Less(t, len(err.Error()), 500)
}

func TestResolveEmptyName(t *testing.T) {
	_, err := newTestResolver(t, DefaultConfig(), nil).Resolve(context.Background(), "")
	require.EqualError(t, err, "consul: empty service name")
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "http scheme", edit: func(c *Config) { c.Address = "http://127.0.0.1:8500" }},
		{name: "https scheme with path prefix", edit: func(c *Config) { c.Address = "https://consul.example:8501/consul" }},
		{name: "token", edit: func(c *Config) { c.Token = "t" }},
		{name: "uuid token", edit: func(c *Config) { c.Token = "b1gs33cr-3t00-4000-8000-000000000000" }},
		{name: "token with a trailing newline", edit: func(c *Config) { c.Token = "abc\n" },
			wantErr: "consul: token: has a line break at byte 3 (a secret file's trailing newline?)"},
		{name: "token with inner space", edit: func(c *Config) { c.Token = "ab c" },
			wantErr: "consul: token: has whitespace at byte 2"},
		{name: "token with a tab", edit: func(c *Config) { c.Token = "abc\t" },
			wantErr: "consul: token: has whitespace at byte 3"},
		{name: "token with a control character", edit: func(c *Config) { c.Token = "a\x00b" },
			wantErr: "consul: token: has a control character or invalid UTF-8 at byte 1"},
		{name: "token with invalid UTF-8", edit: func(c *Config) { c.Token = "a\xffb" },
			wantErr: "consul: token: has a control character or invalid UTF-8 at byte 1"},
		{name: "empty address", edit: func(c *Config) { c.Address = "" }, wantErr: "consul: address must not be empty"},
		{name: "unknown scheme", edit: func(c *Config) { c.Address = "unix:///run/consul.sock" },
			wantErr: `consul: address "unix:///run/consul.sock": scheme must be http or https`},
		{name: "scheme without host", edit: func(c *Config) { c.Address = "https://" },
			wantErr: `consul: address "https://" has no host`},
		{name: "space in address", edit: func(c *Config) { c.Address = "localhost :8500" },
			wantErr: `consul: address "localhost :8500" must not contain spaces`},
		{name: "token and token_file", edit: func(c *Config) { c.Token, c.TokenFile = "t", "/f" },
			wantErr: "consul: token and token_file are mutually exclusive"},
		{name: "zero timeout", edit: func(c *Config) { c.Timeout = 0 }, wantErr: "consul: timeout must be positive, got 0s"},
		{name: "negative timeout", edit: func(c *Config) { c.Timeout = -time.Second }, wantErr: "consul: timeout must be positive, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.wantErr)
			_, err = New(cfg, nil)
			require.EqualError(t, err, tt.wantErr, "New validates too")
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	require.Equal(t, "localhost:8500", cfg.Address)
	require.Equal(t, 5*time.Second, cfg.Timeout)
	require.NoError(t, cfg.Validate())
}

func TestNewTokenFile(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.TokenFile = filepath.Join(dir, "missing")
	_, err := New(cfg, nil)
	require.ErrorContains(t, err, "consul: token_file: stat "+cfg.TokenFile)
	require.True(t, errors.Is(err, os.ErrNotExist))

	cfg.TokenFile = "/dev/zero"
	_, err = New(cfg, nil)
	require.EqualError(t, err, "consul: token_file: /dev/zero: not a regular file (it is a device, which could block or never end)")

	tests := []struct {
		name, content string
		token         string
		err           string // with %s for the path
	}{
		{name: "bare", content: "t0ken", token: "t0ken"},
		{name: "one trailing newline", content: "t0ken\n", token: "t0ken"},
		{name: "one trailing CRLF", content: "t0ken\r\n", token: "t0ken"},
		{name: "empty", content: "", err: "consul: token_file %s is empty"},
		{name: "just a newline", content: "\n", err: "consul: token_file %s is empty"},
		{name: "two trailing newlines", content: "t0ken\n\n", err: "consul: token_file %s: has a line break at byte 5 (a secret file's trailing newline?)"},
		{name: "leading space", content: " t0ken", err: "consul: token_file %s: has whitespace at byte 0"},
		{name: "space only", content: " \n", err: "consul: token_file %s: has whitespace at byte 0"},
		{name: "two lines", content: "t0ken\nmore\n", err: "consul: token_file %s: has a line break at byte 5 (a secret file's trailing newline?)"},
		{name: "control character", content: "t0\x1bken", err: "consul: token_file %s: has a control character or invalid UTF-8 at byte 2"},
		{name: "too large", content: strings.Repeat("a", MaxTokenFileBytes+1), err: "consul: token_file: %s: too large: larger than the limit of 64 KiB"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprint("token", i))
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			token, err := ReadTokenFile(path)
			if tt.err == "" {
				require.NoError(t, err)
				require.Equal(t, tt.token, token)
				return
			}
			require.EqualError(t, err, fmt.Sprintf(tt.err, path))
			cfg := DefaultConfig()
			cfg.TokenFile = path
			_, nerr := New(cfg, nil)
			require.EqualError(t, nerr, err.Error(), "New reads it the same way")
		})
	}
}

// TestAnswerLimit is a Consul (or something in its place) answering
// without end: the lookup fails once MaxAnswerBytes are read, instead of
// holding the answer in memory.
func TestAnswerLimit(t *testing.T) {
	for _, sized := range []bool{false, true} {
		t.Run(fmt.Sprint("content-length ", sized), func(t *testing.T) {
			var sent atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				total := int64(64 << 20)
				if sized {
					w.Header().Set("Content-Length", fmt.Sprint(total))
				}
				w.Header().Set("Content-Type", "application/json")
				chunk := []byte("[" + strings.Repeat(" ", 64<<10-1))
				for sent.Load() < total {
					n, err := w.Write(chunk)
					sent.Add(int64(n))
					if err != nil {
						return
					}
					chunk[0] = ' '
				}
			}))
			t.Cleanup(srv.Close)
			cfg := DefaultConfig()
			cfg.Address = srv.Listener.Addr().String()
			r, err := New(cfg, nil)
			require.NoError(t, err)
			_, err = r.Resolve(context.Background(), "carbon")
			require.ErrorContains(t, err, `consul: resolve service "carbon" at `+cfg.Address)
			require.ErrorContains(t, err, "larger than the limit of 4 MiB")
			srv.CloseClientConnections()
			require.Less(t, sent.Load(), int64(MaxAnswerBytes+8<<20), "the rest of the answer was not read")
		})
	}
}

func TestIsService(t *testing.T) {
	tests := []struct {
		addr     string
		wantName string
		wantOK   bool
	}{
		{addr: "@carbon", wantName: "carbon", wantOK: true},
		{addr: "@carbon-pickle.dc1", wantName: "carbon-pickle.dc1", wantOK: true},
		{addr: "@", wantOK: false},
		{addr: "", wantOK: false},
		{addr: "carbon:2004", wantOK: false},
		{addr: "127.0.0.1:2004", wantOK: false},
		{addr: " @carbon", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			name, ok := IsService(tt.addr)
			require.Equal(t, tt.wantOK, ok)
			require.Equal(t, tt.wantName, name)
		})
	}
}

func TestResolveOverTLS(t *testing.T) {
	// The same fake agent, behind TLS, as Consul serves its API with
	// verify_https_incoming: a CA of the test's own is needed to trust it.
	f := &fakeConsul{services: map[string][]instance{}, index: 10}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.set("carbon", instance{node: "carbon-1", nodeAddr: "127.0.0.11", svcAddr: "127.0.0.21", port: 2004, status: "passing"})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o600))

	cfg := configFor(f)
	cfg.Address = "https://" + f.addr()
	cfg.TLS.CA = ca
	got, err := newTestResolver(t, cfg, nil).Resolve(context.Background(), "carbon")
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.21:2004"}, got)

	cfg.TLS.CA = "" // the system's roots do not know the test's CA
	_, err = newTestResolver(t, cfg, nil).Resolve(context.Background(), "carbon")
	require.ErrorContains(t, err, "certificate")

	bad := cfg
	bad.Address = f.addr()
	bad.TLS.CA = ca
	require.EqualError(t, bad.Validate(), fmt.Sprintf("consul: tls is set but address %q is not https://", f.addr()))
	bad = cfg
	bad.TLS.Cert = "c.pem"
	require.EqualError(t, bad.Validate(), "consul: tls.cert and tls.key go together")
}
