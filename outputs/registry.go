// Package outputs holds shovel's outputs. Each output kind lives in its own
// file and registers itself there; importing this package makes them all
// available by kind.
package outputs

import "github.com/shovel-metrics/shovel/router/metric"

// Factory builds an output from its config. It fills a config struct with
// defaults, lets decode overwrite them from the YAML sub-tree (strictly:
// unknown keys are errors), validates the result and returns the output
// without doing any I/O; the router calls Connect later.
type Factory func(decode metric.DecodeConfig, env metric.Env) (metric.Output, error)

var registry = metric.NewRegistry[Factory]("output kind")

// Register makes an output kind available. It panics on an empty name, a nil
// factory or a duplicate, and is meant to be called from init.
func Register(kind, description string, f Factory) { registry.Register(kind, description, f) }

// Lookup returns the factory registered for kind, or an error listing the known kinds.
func Lookup(kind string) (Factory, error) { return registry.Lookup(kind) }

// Kinds returns the registered output kinds, sorted.
func Kinds() []string { return registry.Names() }

// Description returns the one-line description of the output kind.
func Description(kind string) string { return registry.Description(kind) }
