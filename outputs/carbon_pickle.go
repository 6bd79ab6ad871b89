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

// pickleKeptBuffer is the largest encoding buffer an output keeps between
// writes; a rare huge batch should not pin its memory for good.
const pickleKeptBuffer = 16 << 20

// CarbonPickleConfig configures a carbon-pickle output.
type CarbonPickleConfig struct {
	// Address is "host:port" or "@service" (looked up on every reconnect). Required.
	Address string `mapstructure:"address"`
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
	cc := c.conn("", metric.Env{})
	if err := cc.Validate(); err != nil {
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

// carbonPickle sends samples to Carbon's pickle receiver.
type carbonPickle struct {
	conn     *carbon.Conn
	log      *slog.Logger
	maxFrame int
	buf      []byte // reused across writes; Write is never called concurrently
}

var _ metric.Output = (*carbonPickle)(nil)

func newCarbonPickle(decode metric.DecodeConfig, env metric.Env) (metric.Output, error) {
	const kind = "carbon-pickle"
	cfg := NewCarbonPickleConfig()
	if err := decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	conn, err := carbon.NewConn(cfg.conn(kind, env))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &carbonPickle{
		conn:     conn,
		log:      log,
		maxFrame: cfg.MaxFrameBytes,
	}, nil
}

func (o *carbonPickle) Connect(ctx context.Context) error { return o.conn.Connect(ctx) }

// Write sends all samples as one write of one or more frames. On error the
// router sends the whole batch again; Carbon keeps one value per path and
// timestamp, so the frames that did arrive are merely written twice.
func (o *carbonPickle) Write(ctx context.Context, samples []metric.Sample) error {
	var skipped int
	o.buf, skipped = carbon.AppendPickle(o.buf[:0], samples, o.maxFrame)
	if skipped > 0 {
		o.log.Warn("dropped samples Carbon would reject", "count", skipped)
	}
	if len(o.buf) == 0 {
		return nil
	}
	err := o.conn.Write(ctx, o.buf)
	if cap(o.buf) > pickleKeptBuffer {
		o.buf = nil
	}
	return err
}

func (o *carbonPickle) Close() error { return o.conn.Close() }
