package outputs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/shovel-metrics/shovel/outputs/carbon"
	"github.com/shovel-metrics/shovel/router/metric"
)

// CarbonConfig holds the keys both Carbon outputs (pickle and plaintext)
// share; each kind's config embeds it.
type CarbonConfig struct {
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
	// ConnectTimeout bounds a whole connection attempt: the service
	// lookup and the dials to every address, together.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// WriteTimeout bounds each write of a batch, until Carbon's host has
	// acknowledged it.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// ReconnectMin and ReconnectMax bound the jittered, doubling delay between failed dials.
	ReconnectMin time.Duration `mapstructure:"reconnect_min"`
	ReconnectMax time.Duration `mapstructure:"reconnect_max"`
}

// DefaultCarbonConfig returns the shared defaults. Address has none.
func DefaultCarbonConfig() CarbonConfig {
	return CarbonConfig{
		ConnectTimeout: carbon.DefaultConnectTimeout,
		WriteTimeout:   carbon.DefaultWriteTimeout,
		ReconnectMin:   carbon.DefaultReconnectMin,
		ReconnectMax:   carbon.DefaultReconnectMax,
	}
}

// Validate checks the shared keys without any I/O; errors name the key.
func (c *CarbonConfig) Validate() error {
	cc := c.cluster("", metric.Env{})
	if err := cc.Validate(); err != nil {
		return err
	}
	return c.TLS.Validate()
}

func (c *CarbonConfig) cluster(kind string, env metric.Env) carbon.ClusterConfig {
	return carbon.ClusterConfig{
		Conn: carbon.ConnConfig{
			Kind: kind, Name: env.Name, Logger: env.Logger, Resolver: env.Resolver,
			Address:        c.Address,
			ConnectTimeout: c.ConnectTimeout,
			WriteTimeout:   c.WriteTimeout,
			ReconnectMin:   c.ReconnectMin,
			ReconnectMax:   c.ReconnectMax,
		},
		Destinations:      c.Destinations,
		Distribution:      c.Distribution,
		ReplicationFactor: c.ReplicationFactor,
		DiverseReplicas:   c.DiverseReplicas,
		OnDown:            c.OnDown,
	}
}

// carbonOutput sends samples to Carbon — one address, or several
// destinations spread over by a carbon.Cluster — encoded by the kind's
// encoder.
type carbonOutput struct {
	cluster *carbon.Cluster
	log     *slog.Logger
	// dropped is the warning logged when the encoder leaves samples out.
	dropped string
}

var (
	_ metric.Output           = (*carbonOutput)(nil)
	_ metric.Connectivity     = (*carbonOutput)(nil)
	_ metric.ReconnectCounter = (*carbonOutput)(nil)
)

// newCarbonOutput builds an output from a validated config: the TLS files
// are read here, and nothing connects until Connect.
func newCarbonOutput(kind string, c *CarbonConfig, env metric.Env, encode carbon.Encoder, dropped string) (*carbonOutput, error) {
	cc := c.cluster(kind, env)
	tlsConfig, err := c.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	cc.Conn.TLS = tlsConfig
	cluster, err := carbon.NewCluster(cc, encode)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &carbonOutput{cluster: cluster, log: log, dropped: dropped}, nil
}

func (o *carbonOutput) Connect(ctx context.Context) error { return o.cluster.Connect(ctx) }

// Write sends all samples, as one write to each destination concerned. On
// error the router sends the whole batch again; Carbon keeps one value per
// path and timestamp, so what did arrive is merely written twice, and a
// frame or line torn by the failure is one Carbon discards.
func (o *carbonOutput) Write(ctx context.Context, samples []metric.Sample) error {
	skipped, err := o.cluster.Write(ctx, samples)
	if skipped > 0 {
		o.log.Warn(o.dropped, "count", skipped)
	}
	return err
}

func (o *carbonOutput) Close() error { return o.cluster.Close() }

// Reconnects feeds shovel_output_reconnects_total.
func (o *carbonOutput) Reconnects() uint64 { return o.cluster.Reconnects() }

// Connected tells /readyz whether the destinations can be reached now.
func (o *carbonOutput) Connected() bool { return o.cluster.Connected() }
