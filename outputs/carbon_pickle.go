package outputs

import (
	"fmt"

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
	CarbonConfig `mapstructure:",squash"`
	// MaxFrameBytes caps each frame's pickle payload; Carbon drops the
	// connection on a frame over 1048576 bytes.
	MaxFrameBytes int `mapstructure:"max_frame_bytes"`
}

// NewCarbonPickleConfig returns the defaults. Address has none.
func NewCarbonPickleConfig() CarbonPickleConfig {
	return CarbonPickleConfig{CarbonConfig: DefaultCarbonConfig(), MaxFrameBytes: carbon.DefaultPickleFrame}
}

// Validate checks the config without any I/O; errors name the offending key.
func (c *CarbonPickleConfig) Validate() error {
	if err := c.CarbonConfig.Validate(); err != nil {
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

func newCarbonPickle(decode metric.DecodeConfig, env metric.Env) (metric.Output, error) {
	const kind = "carbon-pickle"
	cfg := NewCarbonPickleConfig()
	if err := decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	maxFrame := cfg.MaxFrameBytes
	return newCarbonOutput(kind, &cfg.CarbonConfig, env, func(dst []byte, samples []metric.Sample) ([]byte, int) {
		return carbon.AppendPickle(dst, samples, maxFrame)
	}, "dropped samples Carbon would reject")
}
