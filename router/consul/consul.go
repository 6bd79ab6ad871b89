// Package consul resolves "@service" addresses to the healthy instances that
// Consul's health API knows of. It implements metric.Resolver.
//
// Outputs ask again on every reconnect, so a flapping Consul must not take
// the pipeline down: once a service has been resolved, a failed lookup
// returns the last good addresses and logs a rate-limited warning. Only a
// lookup that never succeeded, or a successful answer with no healthy
// instance, is an error.
package consul

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/consul/api"

	"github.com/shovel-metrics/shovel/internal/limitedfile"
	"github.com/shovel-metrics/shovel/router/metric"
)

// Defaults filled in by DefaultConfig.
const (
	DefaultAddress = "localhost:8500"
	DefaultTimeout = 5 * time.Second
)

// warnEvery is how often a failing Consul is reported per service while the
// resolver keeps serving that service's last good addresses.
const warnEvery = time.Minute

// maxErrorBody caps how much of an unexpected HTTP response body ends up in
// an error: a proxy in front of Consul may answer with a whole HTML page.
const maxErrorBody = 200

// MaxTokenFileBytes is the largest token_file New reads: a Consul ACL
// token is a 36-character UUID.
const MaxTokenFileBytes = 64 << 10

// MaxAnswerBytes is the largest answer of Consul's health API that a
// lookup reads. One passing instance takes about 1–3 KB of JSON, so this
// allows over a thousand instances; a runaway or hostile answer fails the
// lookup instead of filling memory (docs/limits.md).
const MaxAnswerBytes = 4 << 20

// ErrNoHealthyInstance is wrapped by Resolve errors when Consul answered but
// reported no passing instance of the service.
var ErrNoHealthyInstance = errors.New("no healthy instance")

// Config is the `consul:` section of shovel's config.
type Config struct {
	// Address is Consul's HTTP API, "host:port", optionally prefixed with
	// "http://" or "https://".
	Address string `mapstructure:"address"`
	// Token is the ACL token sent as X-Consul-Token. It is never logged.
	Token string `mapstructure:"token"`
	// TokenFile names a file holding the ACL token; it is read once by New.
	// When neither Token nor TokenFile is set, Consul's own
	// CONSUL_HTTP_TOKEN and CONSUL_HTTP_TOKEN_FILE variables apply, as they
	// do for the consul CLI.
	TokenFile string `mapstructure:"token_file"`
	// Datacenter is sent as "dc"; empty means the agent's own datacenter.
	Datacenter string `mapstructure:"datacenter"`
	// Timeout bounds one lookup.
	Timeout time.Duration `mapstructure:"timeout"`
	// TLS configures an https:// address: a CA to trust instead of the
	// system's, a client certificate for Consul's verify_incoming.
	TLS TLS `mapstructure:"tls"`
}

// TLS is the `consul.tls:` section.
type TLS struct {
	CA                 string `mapstructure:"ca"`
	Cert               string `mapstructure:"cert"`
	Key                string `mapstructure:"key"`
	ServerName         string `mapstructure:"server_name"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{Address: DefaultAddress, Timeout: DefaultTimeout}
}

// Validate checks c without doing any I/O. Its errors name the offending key.
func (c Config) Validate() error {
	if strings.TrimSpace(c.Address) == "" {
		return errors.New("consul: address must not be empty")
	}
	if strings.ContainsAny(c.Address, " \t\r\n") {
		return fmt.Errorf("consul: address %q must not contain spaces", c.Address)
	}
	if scheme, rest, ok := strings.Cut(c.Address, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return fmt.Errorf("consul: address %q: scheme must be http or https", c.Address)
		}
		if rest == "" || rest[0] == '/' {
			return fmt.Errorf("consul: address %q has no host", c.Address)
		}
	}
	if c.Token != "" && c.TokenFile != "" {
		return errors.New("consul: token and token_file are mutually exclusive")
	}
	if err := checkToken(c.Token); err != nil {
		return fmt.Errorf("consul: token: %w", err)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("consul: timeout must be positive, got %s", c.Timeout)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return errors.New("consul: tls.cert and tls.key go together")
	}
	if c.TLS != (TLS{}) && !strings.HasPrefix(c.Address, "https://") {
		return fmt.Errorf("consul: tls is set but address %q is not https://", c.Address)
	}
	return nil
}

// Resolver looks services up in Consul's health API. It is safe for
// concurrent use.
type Resolver struct {
	client  *api.Client
	address string // as configured, for messages
	timeout time.Duration
	logger  *slog.Logger
	now     func() time.Time // replaced in tests

	mu       sync.Mutex
	services map[string]*serviceState
}

// serviceState is what the resolver remembers about one service between
// lookups.
type serviceState struct {
	addrs    []string  // last good answer; never empty
	failures int       // failed lookups since the last success
	lastWarn time.Time // when the last "using last good addresses" warning went out
}

var _ metric.Resolver = (*Resolver)(nil)

// New validates cfg and returns a Resolver. It reads cfg.TokenFile but does
// not contact Consul. A nil logger discards log output.
func New(cfg Config, logger *slog.Logger) (*Resolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	token := cfg.Token
	if cfg.TokenFile != "" {
		var err error
		if token, err = ReadTokenFile(cfg.TokenFile); err != nil {
			return nil, err
		}
	}
	apiCfg := &api.Config{
		Address:    cfg.Address, // NewClient strips an http:// or https:// prefix and sets the scheme
		Scheme:     "http",
		Datacenter: cfg.Datacenter,
		Token:      token,
		TLSConfig: api.TLSConfig{
			CAFile: cfg.TLS.CA, CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key,
			Address: cfg.TLS.ServerName, InsecureSkipVerify: cfg.TLS.InsecureSkipVerify,
		},
	}
	client, err := api.NewClient(apiCfg)
	if err != nil {
		return nil, fmt.Errorf("consul: client for %s: %w", cfg.Address, err)
	}
	// NewClient stores the *http.Client it built in apiCfg and shares it
	// with client: wrapping its transport bounds every answer client reads.
	if apiCfg.HttpClient == nil || apiCfg.HttpClient.Transport == nil {
		return nil, fmt.Errorf("consul: client for %s: no HTTP transport to bound answers with", cfg.Address)
	}
	apiCfg.HttpClient.Transport = &boundedAnswers{next: apiCfg.HttpClient.Transport, limit: MaxAnswerBytes}
	return &Resolver{
		client:   client,
		address:  cfg.Address,
		timeout:  cfg.Timeout,
		logger:   logger,
		now:      time.Now,
		services: map[string]*serviceState{},
	}, nil
}

// Resolve returns the "host:port" addresses of the passing instances of
// service, in Consul's order. When Consul cannot be asked but an earlier
// lookup of service succeeded, it returns that lookup's addresses instead.
func (r *Resolver) Resolve(ctx context.Context, service string) ([]string, error) {
	if service == "" {
		return nil, errors.New("consul: empty service name")
	}
	lookupCtx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	q := (&api.QueryOptions{}).WithContext(lookupCtx)
	entries, _, err := r.client.Health().Service(service, "", true, q)
	if err != nil {
		err = trimStatusBody(err)
		if ctx.Err() != nil {
			// The caller gave up (shutdown); stale addresses would only
			// delay it.
			return nil, fmt.Errorf("consul: resolve service %q at %s: %w", service, r.address, err)
		}
		return r.lastGood(service, err)
	}

	addrs := instanceAddrs(entries)
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.services[service]
	if len(addrs) == 0 {
		// Consul answered: the service really has no passing instance, so
		// the old addresses must not be served later either.
		delete(r.services, service)
		return nil, fmt.Errorf("consul: %w of service %q at %s", ErrNoHealthyInstance, service, r.address)
	}
	if st == nil {
		st = &serviceState{}
		r.services[service] = st
	}
	if st.failures > 0 {
		r.logger.Info("consul lookups recovered", "service", service, "consul", r.address, "failed_lookups", st.failures)
	}
	st.addrs, st.failures, st.lastWarn = addrs, 0, time.Time{}
	return slices.Clone(addrs), nil
}

// lastGood answers a failed lookup with the service's last good addresses,
// or with an error naming Consul's address when there are none.
func (r *Resolver) lastGood(service string, lookupErr error) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.services[service]
	if st == nil {
		return nil, fmt.Errorf("consul: resolve service %q at %s: %w", service, r.address, lookupErr)
	}
	st.failures++
	if now := r.now(); st.lastWarn.IsZero() || now.Sub(st.lastWarn) >= warnEvery {
		st.lastWarn = now
		r.logger.Warn("consul lookup failed, using last known addresses",
			"service", service, "consul", r.address, "addresses", st.addrs,
			"failed_lookups", st.failures, "error", lookupErr)
	}
	return slices.Clone(st.addrs), nil
}

// instanceAddrs turns health entries into unique "host:port" strings. The
// service address wins; Consul documents that an empty one means the node's
// address. Entries without a host or a port cannot be dialled and are skipped.
func instanceAddrs(entries []*api.ServiceEntry) []string {
	addrs := make([]string, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil || e.Service.Port <= 0 {
			continue
		}
		host := e.Service.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		if host == "" {
			continue
		}
		addr := net.JoinHostPort(host, fmt.Sprint(e.Service.Port))
		if !slices.Contains(addrs, addr) {
			addrs = append(addrs, addr)
		}
	}
	return addrs
}

// trimStatusBody shortens the response body that the consul client puts in
// an unexpected-status error.
func trimStatusBody(err error) error {
	var se api.StatusError
	if !errors.As(err, &se) || len(se.Body) <= maxErrorBody {
		return err
	}
	se.Body = strings.ToValidUTF8(se.Body[:maxErrorBody], "") + "…"
	return se
}

// ReadTokenFile reads an ACL token from path, as token_file says: at most
// MaxTokenFileBytes, one trailing newline removed (as `echo token > file`
// leaves it), and no other whitespace or control character, which Consul
// would reject on every lookup.
func ReadTokenFile(path string) (string, error) {
	b, err := limitedfile.Read(path, MaxTokenFileBytes)
	if err != nil {
		return "", fmt.Errorf("consul: token_file: %w", err)
	}
	token := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if token == "" {
		return "", fmt.Errorf("consul: token_file %s is empty", path)
	}
	if err := checkToken(token); err != nil {
		return "", fmt.Errorf("consul: token_file %s: %w", path, err)
	}
	return token, nil
}

// checkToken refuses what cannot be sent as an X-Consul-Token header
// value that Consul would accept: whitespace (a stray newline from a
// secret file is the usual case) and control characters. It never
// quotes the token.
func checkToken(token string) error {
	for i, r := range token {
		switch {
		case r == '\n' || r == '\r':
			return fmt.Errorf("has a line break at byte %d (a secret file's trailing newline?)", i)
		case unicode.IsSpace(r):
			return fmt.Errorf("has whitespace at byte %d", i)
		case unicode.IsControl(r) || r == utf8.RuneError:
			return fmt.Errorf("has a control character or invalid UTF-8 at byte %d", i)
		}
	}
	return nil
}

// boundedAnswers fails a response body read past limit bytes.
type boundedAnswers struct {
	next  http.RoundTripper
	limit int64
}

func (b *boundedAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	if resp.ContentLength > b.limit {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("answer of %d bytes is larger than the limit of %s", resp.ContentLength, limitedfile.Size(b.limit))
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, left: b.limit, limit: b.limit}
	return resp, nil
}

type boundedBody struct {
	io.ReadCloser
	left  int64
	limit int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.err()
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, b.err()
	}
	return n, err
}

func (b *boundedBody) err() error {
	return fmt.Errorf("answer is larger than the limit of %s", limitedfile.Size(b.limit))
}

// IsService reports whether addr is written "@name", and returns name.
func IsService(addr string) (name string, ok bool) {
	if len(addr) < 2 || addr[0] != '@' {
		return "", false
	}
	return addr[1:], true
}
