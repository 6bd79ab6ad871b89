package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Overrides are the original shovel's command-line flags, applied on top
// of the file. Zero values leave the file's setting alone.
type Overrides struct {
	Kafka     string  // -K: bootstrap servers, or "@name"
	Consul    string  // -c: Consul address
	Topic     string  // -t: one topic
	Group     string  // -g
	Host      string  // -H: Carbon host, for the pickle and plaintext outputs
	Port      int     // -p: Carbon pickle port
	LinePort  int     // --line-port: Carbon plaintext port
	HTTP      *string // --http: status endpoints address ("" disables)
	LogLevel  string  // --log-level
	LogFormat string  // --log-format
}

// Output kinds the Carbon flags apply to.
const (
	kindPickle    = "carbon-pickle"
	kindPlaintext = "carbon-plaintext"
)

// Apply writes o over c. -H, -p and --line-port change the address of every
// single-address carbon-pickle (-H, -p) and carbon-plaintext (-H,
// --line-port) output (outputs with destinations are left alone); a flag
// with no such output to change is an error.
func (c *Config) Apply(o Overrides) error {
	if o.Kafka != "" {
		c.Kafka.Brokers = nil
		for _, b := range strings.Split(o.Kafka, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.Kafka.Brokers = append(c.Kafka.Brokers, b)
			}
		}
	}
	if o.Consul != "" {
		c.Consul.Address = o.Consul
	}
	if o.Topic != "" {
		c.Kafka.Topics = []string{o.Topic}
	}
	if o.Group != "" {
		c.Kafka.Group = o.Group
	}
	if o.HTTP != nil {
		c.HTTP.Address = *o.HTTP
	}
	for _, f := range []struct {
		val, flag, key string
		into           *string
	}{{o.LogLevel, "--log-level", "log.level", &c.Log.Level}, {o.LogFormat, "--log-format", "log.format", &c.Log.Format}} {
		if f.val != "" {
			*f.into = strings.ToLower(f.val)
			if c.env == nil {
				c.env = map[string]string{}
			}
			c.env[f.key] = f.flag // a problem with the value names the flag
		}
	}
	for flag, port := range map[string]int{"-p/--port": o.Port, "--line-port": o.LinePort} {
		if port != 0 && (port < 1 || port > 65535) {
			return fmt.Errorf("%s: port must be from 1 to 65535, got %d", flag, port)
		}
	}
	if o.Host == "" && o.Port == 0 && o.LinePort == 0 {
		return nil
	}
	changed := map[string]bool{}
	for name, out := range c.Outputs {
		var port int
		switch out.Kind {
		case kindPickle:
			port = o.Port
		case kindPlaintext:
			port = o.LinePort
		default:
			continue
		}
		if o.Host == "" && port == 0 {
			continue
		}
		if _, cluster := out.Options["destinations"]; cluster {
			continue // a cluster has no single host or port to replace
		}
		addr, err := overrideAddress(fmt.Sprint(out.Options["address"]), o.Host, port)
		if err != nil {
			return fmt.Errorf("outputs.%s.address: %w", name, err)
		}
		if out.Options == nil {
			out.Options = map[string]any{}
		}
		out.Options["address"] = addr
		c.Outputs[name] = out
		changed[out.Kind] = true
	}
	switch {
	case o.Host != "" && len(changed) == 0:
		return fmt.Errorf("-H/--host: the config has no %s or %s output to point at %s", kindPickle, kindPlaintext, o.Host)
	case o.Port != 0 && !changed[kindPickle]:
		return fmt.Errorf("-p/--port: the config has no %s output", kindPickle)
	case o.LinePort != 0 && !changed[kindPlaintext]:
		return fmt.Errorf("--line-port: the config has no %s output", kindPlaintext)
	}
	return nil
}

// overrideAddress replaces the host and/or port of addr. An "@service"
// address has neither, so a flag that sets only one of them is not enough.
func overrideAddress(addr, host string, port int) (string, error) {
	oldHost, oldPort, err := net.SplitHostPort(addr)
	if err != nil {
		if host == "" || port == 0 {
			return "", fmt.Errorf("%q has no host:port to change; give both -H and the port", addr)
		}
		return net.JoinHostPort(host, strconv.Itoa(port)), nil
	}
	if host == "" {
		host = oldHost
	}
	if port == 0 {
		return net.JoinHostPort(host, oldPort), nil
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}
