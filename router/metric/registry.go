package metric

import (
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// DecodeConfig decodes a plugin's YAML sub-tree into the struct that into
// points to. It is strict: a key the struct does not have is an error that
// names the key. Plugins call it on a struct already filled with defaults,
// then validate the result; they never see viper or YAML themselves.
type DecodeConfig func(into any) error

// Env carries the dependencies a plugin instance is built with.
type Env struct {
	// Name is the instance's name in the config (for example "graphite").
	Name string
	// Logger is already scoped to the instance.
	Logger *slog.Logger
	// Resolver looks up "@service" addresses; nil when Consul is not configured.
	Resolver Resolver
}

// Registry maps plugin names to factories. Each plugin kind (decoders,
// outputs) keeps one unexported Registry; plugins add themselves from their
// own file's init function.
type Registry[F any] struct {
	kind    string
	mu      sync.RWMutex
	entries map[string]entry[F]
}

type entry[F any] struct {
	description string
	factory     F
}

// NewRegistry returns an empty registry; kind ("decoder", "output") is used
// in error messages.
func NewRegistry[F any](kind string) *Registry[F] {
	return &Registry[F]{kind: kind, entries: map[string]entry[F]{}}
}

// Register adds a factory under name. It panics on an empty name, a nil
// factory or a duplicate name: those are programming mistakes that must not
// survive the first test run.
func (r *Registry[F]) Register(name, description string, factory F) {
	if name == "" {
		panic(fmt.Sprintf("shovel: %s registered with an empty name", r.kind))
	}
	if v := reflect.ValueOf(factory); !v.IsValid() || (v.Kind() == reflect.Func && v.IsNil()) {
		panic(fmt.Sprintf("shovel: %s %q registered with a nil factory", r.kind, name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.entries[name]; dup {
		panic(fmt.Sprintf("shovel: %s %q registered twice", r.kind, name))
	}
	r.entries[name] = entry[F]{description: description, factory: factory}
}

// Lookup returns the factory registered under name, or an error that lists
// the known names.
func (r *Registry[F]) Lookup(name string) (F, error) {
	r.mu.RLock()
	e, ok := r.entries[name]
	r.mu.RUnlock()
	if !ok {
		var zero F
		return zero, fmt.Errorf("unknown %s %q (known: %s)", r.kind, name, strings.Join(r.Names(), ", "))
	}
	return e.factory, nil
}

// Names returns the registered names, sorted.
func (r *Registry[F]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Description returns the one-line description registered with name.
func (r *Registry[F]) Description(name string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.entries[name].description
}
