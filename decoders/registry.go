// Package decoders holds shovel's message decoders. Each decoder lives in its
// own file and registers itself there; importing this package makes them all
// available by name.
package decoders

import "github.com/shovel-metrics/shovel/router/metric"

// Factory builds a decoder from its config. It fills a config struct with
// defaults, lets decode overwrite them from the YAML sub-tree (strictly:
// unknown keys are errors), validates the result and returns the decoder.
type Factory func(decode metric.DecodeConfig, env metric.Env) (metric.Decoder, error)

var registry = metric.NewRegistry[Factory]("decoder")

// Register makes a decoder available under name. It panics on an empty name,
// a nil factory or a duplicate, and is meant to be called from init.
func Register(name, description string, f Factory) { registry.Register(name, description, f) }

// Lookup returns the factory registered under name, or an error listing the known ones.
func Lookup(name string) (Factory, error) { return registry.Lookup(name) }

// Names returns the registered decoder names, sorted.
func Names() []string { return registry.Names() }

// Description returns the one-line description of the decoder called name.
func Description(name string) string { return registry.Description(name) }
