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
	// Address is "host:port" or "@service" (looked up on every reconnect). Required.
	Address string `mapstructure:"address"`
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
	cc := c.conn("", metric.Env{})
	return cc.Validate()
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

// carbonPlaintext sends samples to Carbon's line receiver.
type carbonPlaintext struct {
	conn *carbon.Conn
	log  *slog.Logger
	buf  []byte // reused across writes; Write is never called concurrently
}

var _ metric.Output = (*carbonPlaintext)(nil)

func newCarbonPlaintext(decode metric.DecodeConfig, env metric.Env) (metric.Output, error) {
	const kind = "carbon-plaintext"
	cfg := NewCarbonPlaintextConfig()
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
	return &carbonPlaintext{conn: conn, log: log}, nil
}

func (o *carbonPlaintext) Connect(ctx context.Context) error { return o.conn.Connect(ctx) }

// Write sends all samples as one write. On error the router sends the
// whole batch again; Carbon keeps one value per path and timestamp, so the
// lines that did arrive are merely written twice. A line torn by the
// failure is one Carbon discards.
func (o *carbonPlaintext) Write(ctx context.Context, samples []metric.Sample) error {
	var skipped int
	o.buf, skipped = carbon.AppendPlaintext(o.buf[:0], samples)
	if skipped > 0 {
		o.log.Warn("dropped samples whose path would break a plaintext line", "count", skipped)
	}
	if len(o.buf) == 0 {
		return nil
	}
	err := o.conn.Write(ctx, o.buf)
	if cap(o.buf) > plaintextKeptBuffer {
		o.buf = nil
	}
	return err
}

func (o *carbonPlaintext) Close() error { return o.conn.Close() }
