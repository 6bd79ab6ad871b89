package outputs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/shovel-metrics/shovel/outputs/carbon"
	"github.com/shovel-metrics/shovel/router/metric"
)

func init() {
	Register("carbon-plaintext", "Carbon plaintext protocol over TCP (port 2003), one \"path value timestamp\" line per sample", newCarbonPlaintext)
}

// plaintextKeptBuffer is the largest encoding buffer kept between writes; a
// rare huge batch should not pin its memory for good.
const plaintextKeptBuffer = 16 << 20

// CarbonPlaintextConfig configures a carbon-plaintext output.
type CarbonPlaintextConfig struct {
	// Address is "host:port" or "@service" (looked up on every reconnect).
	// Exactly one of Address and Destinations is required.
	Address string `mapstructure:"address"`
	// Destinations are several Carbon nodes, spread over as Distribution
	// says: all, any, failover, carbon_ch, fnv1a_ch or jump_fnv1a_ch.
	Destinations []carbon.Destination `mapstructure:"destinations"`
	Distribution carbon.Distribution  `mapstructure:"distribution"`
	// ReplicationFactor is how many nodes a hashed sample goes to (default 1).
	ReplicationFactor int `mapstructure:"replication_factor"`
	// DiverseReplicas (carbon_ch) puts replicas on different hosts; default true, as in carbon.
	DiverseReplicas *bool `mapstructure:"diverse_replicas"`
	// OnDown is wait (default: fail the write, the router retries) or
	// next (hashed: the next node on the ring; all: the others suffice).
	OnDown carbon.OnDown `mapstructure:"on_down"`
	// TLS wraps the connections in TLS, with a client certificate for mutual TLS.
	TLS carbon.TLSConfig `mapstructure:"tls"`
	// ConnectTimeout bounds the service lookup and each dial.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// WriteTimeout bounds each write of a batch.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// ReconnectMin and ReconnectMax bound the jittered, doubling delay between failed dials.
	ReconnectMin time.Duration `mapstructure:"reconnect_min"`
	ReconnectMax time.Duration `mapstructure:"reconnect_max"`
}

// NewCarbonPlaintextConfig returns the defaults. Address has none.
func NewCarbonPlaintextConfig() CarbonPlaintextConfig {
	return CarbonPlaintextConfig{
		ConnectTimeout: carbon.DefaultConnectTimeout,
		WriteTimeout:   carbon.DefaultWriteTimeout,
		ReconnectMin:   carbon.DefaultReconnectMin,
		ReconnectMax:   carbon.DefaultReconnectMax,
	}
}

// Validate checks the config without any I/O; errors name the offending key.
func (c *CarbonPlaintextConfig) Validate() error {
	cc := c.cluster("", metric.Env{})
	if err := cc.Validate(); err != nil {
		return err
	}
	return c.TLS.Validate()
}

func (c *CarbonPlaintextConfig) cluster(kind string, env metric.Env) carbon.ClusterConfig {
	return carbon.ClusterConfig{
		Conn:              c.conn(kind, env),
		Destinations:      c.Destinations,
		Distribution:      c.Distribution,
		ReplicationFactor: c.ReplicationFactor,
		DiverseReplicas:   c.DiverseReplicas,
		OnDown:            c.OnDown,
	}
}

func (c *CarbonPlaintextConfig) conn(kind string, env metric.Env) carbon.ConnConfig {
	return carbon.ConnConfig{
		Kind: kind, Name: env.Name, Logger: env.Logger, Resolver: env.Resolver,
		Address:        c.Address,
		ConnectTimeout: c.ConnectTimeout,
		WriteTimeout:   c.WriteTimeout,
		ReconnectMin:   c.ReconnectMin,
		ReconnectMax:   c.ReconnectMax,
	}
}

// carbonPlaintext sends samples to Carbon's line receiver: one address, or
// several destinations spread over by a carbon.Cluster.
type carbonPlaintext struct {
	cluster *carbon.Cluster
	log     *slog.Logger
}

var (
	_ metric.Output       = (*carbonPlaintext)(nil)
	_ metric.Connectivity = (*carbonPlaintext)(nil)
)

func newCarbonPlaintext(decode metric.DecodeConfig, env metric.Env) (metric.Output, error) {
	const kind = "carbon-plaintext"
	cfg := NewCarbonPlaintextConfig()
	if err := decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	cc := cfg.cluster(kind, env)
	tlsConfig, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	cc.Conn.TLS = tlsConfig
	cluster, err := carbon.NewCluster(cc, carbon.AppendPlaintext)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &carbonPlaintext{cluster: cluster, log: log}, nil
}

func (o *carbonPlaintext) Connect(ctx context.Context) error { return o.cluster.Connect(ctx) }

// Write sends all samples, as one write to each destination concerned. On
// error the router sends the whole batch again; Carbon keeps one value per
// path and timestamp, so the lines that did arrive are merely written
// twice. A line torn by the failure is one Carbon discards.
func (o *carbonPlaintext) Write(ctx context.Context, samples []metric.Sample) error {
	skipped, err := o.cluster.Write(ctx, samples)
	if skipped > 0 {
		o.log.Warn("dropped samples whose path would break a plaintext line", "count", skipped)
	}
	return err
}

func (o *carbonPlaintext) Close() error { return o.cluster.Close() }

// Connected tells /readyz whether the destinations can be reached now.
func (o *carbonPlaintext) Connected() bool { return o.cluster.Connected() }
