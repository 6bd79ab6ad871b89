package config

import (
	"fmt"
	"log/slog"

	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/router/metric"
)

// DecoderKind returns the registered decoder kind that name stands for in
// c: the kind of its entry under decoders:, or name itself.
func (c *Config) DecoderKind(name string) string {
	if dc, ok := c.Decoders[name]; ok {
		return dc.Kind
	}
	return name
}

// LargestMessage is the largest message value that the routes' decoders
// accept (their max_message_bytes, see metric.MessageLimit); 0 when none
// states a limit. The dead-letter producer derives its record limit from
// it, so that every message a decoder could read fits in a dead letter.
func (c *Config) LargestMessage() (int, error) {
	largest := 0
	seen := map[string]bool{}
	for _, r := range c.Routes {
		if seen[r.Decoder] {
			continue
		}
		seen[r.Decoder] = true
		d, err := c.NewDecoder(r.Decoder, nil)
		if err != nil {
			return 0, err
		}
		if l, ok := d.(metric.MessageLimit); ok {
			largest = max(largest, l.MaxMessageBytes())
		}
	}
	return largest, nil
}

// NewDecoder builds the decoder a route would name: an entry of decoders:
// with its own settings, or a registered decoder with its defaults. It is
// what Build does for each route's decoder, for tools that decode without
// running the router (`shovel decode`). Errors name the key.
func (c *Config) NewDecoder(name string, log *slog.Logger) (metric.Decoder, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := "decoders." + name
	var opts map[string]any
	if dc, ok := c.Decoders[name]; ok {
		opts = dc.Options
	}
	f, err := decoders.Lookup(c.DecoderKind(name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	d, err := f(pluginDecoder(opts, key, []string{"kind"}), metric.Env{Name: name, Logger: log.With("decoder", name)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}
