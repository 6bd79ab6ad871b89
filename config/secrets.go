package config

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shovel-metrics/shovel/internal/limitedfile"
)

// secretRef matches a whole setting value of the form ${env:NAME} or
// ${file:/path}: secrets stay out of the YAML file and out of version
// control, and the file or variable is read once at start-up.
var secretRef = regexp.MustCompile(`^\$\{(env|file):([^}]+)\}$`)

// secretKeys are librdkafka properties that hold credentials.
var secretKeys = []string{"sasl.password", "sasl.oauthbearer.client.secret", "ssl.key.password",
	"ssl.keystore.password", "ssl.key.pem", "sasl.oauthbearer.config"}

func isSecretKey(k string) bool {
	for _, s := range secretKeys {
		if k == s {
			return true
		}
	}
	return false
}

// resolveSecrets replaces ${env:NAME} and ${file:PATH} values in librdkafka
// settings and in consul.token. Errors name the key, never the value.
func (c *Config) resolveSecrets() error {
	var errs []string
	resolve := func(key string, v string) string {
		m := secretRef.FindStringSubmatch(v)
		if m == nil {
			return v
		}
		switch m[1] {
		case "env":
			val, ok := os.LookupEnv(m[2])
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: environment variable %s is not set", key, m[2]))
			}
			return val
		default:
			b, err := limitedfile.Read(m[2], MaxSecretBytes)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", key, err))
			}
			return strings.TrimRight(string(b), "\r\n")
		}
	}
	for _, section := range []struct {
		prefix   string
		settings map[string]any
	}{{"kafka.settings.", c.Kafka.Settings}, {"dead_letter.settings.", c.DeadLetter.Settings}} {
		for k, v := range section.settings {
			if s, ok := v.(string); ok {
				section.settings[k] = resolve(section.prefix+k, s)
			}
		}
	}
	c.Consul.Token = resolve("consul.token", c.Consul.Token)
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// SecretWarnings lists problems with how a config file holds secrets: a
// literal credential in a file that other users can read. It is for
// `shovel config check`; it never prints the secret.
func SecretWarnings(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	data, err := limitedfile.Read(path, MaxConfigBytes)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var literal []string
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(k, c)
			}
		case []any:
			for _, c := range x {
				walk(key, c)
			}
		case string:
			if (isSecretKey(key) || key == "token" || key == "password") && x != "" && !secretRef.MatchString(x) {
				literal = append(literal, key)
			}
		}
	}
	walk("", tree)
	if len(literal) == 0 || st.Mode().Perm()&0o004 == 0 {
		return nil, nil
	}
	sort.Strings(literal)
	return []string{fmt.Sprintf("%s is readable by every user (mode %v) and holds secrets (%s): "+
		"chmod 600 it, or use ${env:NAME} or ${file:PATH} values", path, st.Mode().Perm(), strings.Join(literal, ", "))}, nil
}
