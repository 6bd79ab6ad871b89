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
	Register("carbon-pickle", "Carbon pickle protocol over TCP (port 2004), in frames of at most max_frame_bytes", newCarbonPickle)
}

// minPickleFrame is the smallest max_frame_bytes accepted: a frame must
// hold one sample with the longest path metric.ValidPath lets through, or
// such a sample could never be sent.
const minPickleFrame = 8192

// CarbonPickleConfig configures a carbon-pickle output.
type CarbonPickleConfig struct {
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
	// MaxFrameBytes caps each pickle frame's payload. Carbon drops the
	// connection on a frame over 1048576 bytes.
	MaxFrameBytes int `mapstructure:"max_frame_bytes"`
}

// NewCarbonPickleConfig returns the defaults. Address has none.
func NewCarbonPickleConfig() CarbonPickleConfig {
	return CarbonPickleConfig{
		ConnectTimeout: carbon.DefaultConnectTimeout,
		WriteTimeout:   carbon.DefaultWriteTimeout,
		ReconnectMin:   carbon.DefaultReconnectMin,
		ReconnectMax:   carbon.DefaultReconnectMax,
		MaxFrameBytes:  carbon.DefaultPickleFrame,
	}
}

// Validate checks the config without any I/O; errors name the offending key.
func (c *CarbonPickleConfig) Validate() error {
	cc := c.cluster("", metric.Env{})
	if err := cc.Validate(); err != nil {
		return err
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	switch {
	case c.MaxFrameBytes > carbon.MaxPickleFrame:
		return fmt.Errorf("max_frame_bytes: %d is above %d, the largest frame Carbon accepts", c.MaxFrameBytes, carbon.MaxPickleFrame)
	case c.MaxFrameBytes < minPickleFrame:
		return fmt.Errorf("max_frame_bytes: %d is below %d, too small for a sample with a long path", c.MaxFrameBytes, minPickleFrame)
	}
	return nil
}

func (c *CarbonPickleConfig) cluster(kind string, env metric.Env) carbon.ClusterConfig {
	return carbon.ClusterConfig{
		Conn:              c.conn(kind, env),
		Destinations:      c.Destinations,
		Distribution:      c.Distribution,
		ReplicationFactor: c.ReplicationFactor,
		DiverseReplicas:   c.DiverseReplicas,
		OnDown:            c.OnDown,
	}
}

func (c *CarbonPickleConfig) conn(kind string, env metric.Env) carbon.ConnConfig {
	return carbon.ConnConfig{
		Kind: kind, Name: env.Name, Logger: env.Logger, Resolver: env.Resolver,
		Address:        c.Address,
		ConnectTimeout: c.ConnectTimeout,
		WriteTimeout:   c.WriteTimeout,
		ReconnectMin:   c.ReconnectMin,
		ReconnectMax:   c.ReconnectMax,
	}
}

// carbonPickle sends samples to Carbon's pickle receiver: one address, or
// several destinations spread over by a carbon.Cluster.
type carbonPickle struct {
	cluster *carbon.Cluster
	log     *slog.Logger
}

var (
	_ metric.Output       = (*carbonPickle)(nil)
	_ metric.Connectivity = (*carbonPickle)(nil)
)

func newCarbonPickle(decode metric.DecodeConfig, env metric.Env) (metric.Output, error) {
	const kind = "carbon-pickle"
	cfg := NewCarbonPickleConfig()
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
	maxFrame := cfg.MaxFrameBytes
	cluster, err := carbon.NewCluster(cc, func(dst []byte, samples []metric.Sample) ([]byte, int) {
		return carbon.AppendPickle(dst, samples, maxFrame)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &carbonPickle{cluster: cluster, log: log}, nil
}

func (o *carbonPickle) Connect(ctx context.Context) error { return o.cluster.Connect(ctx) }

// Write sends all samples, as one write of one or more frames to each
// destination concerned. On error the router sends the whole batch again;
// Carbon keeps one value per path and timestamp, so the frames that did
// arrive are merely written twice.
func (o *carbonPickle) Write(ctx context.Context, samples []metric.Sample) error {
	skipped, err := o.cluster.Write(ctx, samples)
	if skipped > 0 {
		o.log.Warn("dropped samples Carbon would reject", "count", skipped)
	}
	return err
}

func (o *carbonPickle) Close() error { return o.cluster.Close() }

// Connected tells /readyz whether the destinations can be reached now.
func (o *carbonPickle) Connected() bool { return o.cluster.Connected() }
