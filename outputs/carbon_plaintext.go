package outputs

import (
	"fmt"

	"github.com/shovel-metrics/shovel/outputs/carbon"
	"github.com/shovel-metrics/shovel/router/metric"
)

func init() {
	Register("carbon-plaintext", "Carbon plaintext protocol over TCP (port 2003), one \"path value timestamp\" line per sample", newCarbonPlaintext)
}

// plaintextKeptBuffer is the largest encoding buffer kept between writes; a
// rare huge batch should not pin its memory for good.
const plaintextKeptBuffer = 16 << 20

// CarbonPlaintextConfig configures a carbon-plaintext output: the keys
// every Carbon output has, nothing more.
type CarbonPlaintextConfig struct {
	CarbonConfig `mapstructure:",squash"`
}

// NewCarbonPlaintextConfig returns the defaults. Address has none.
func NewCarbonPlaintextConfig() CarbonPlaintextConfig {
	return CarbonPlaintextConfig{CarbonConfig: DefaultCarbonConfig()}
}

func newCarbonPlaintext(decode metric.DecodeConfig, env metric.Env) (metric.Output, error) {
	const kind = "carbon-plaintext"
	cfg := NewCarbonPlaintextConfig()
	if err := decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	return newCarbonOutput(kind, &cfg.CarbonConfig, env, carbon.AppendPlaintext,
		"dropped samples whose path would break a plaintext line")
}
