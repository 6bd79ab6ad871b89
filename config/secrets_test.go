package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), mode))
	require.NoError(t, os.Chmod(p, mode))
	return p
}

func TestSecretReferences(t *testing.T) {
	t.Setenv("TEST_SASL_PASSWORD", "s3cret-from-env")
	tokenFile := writeFile(t, "token", "tok-from-file\n", 0o600)
	cfg := writeFile(t, "shovel.yaml", `
kafka:
  brokers: k:9092
  topics: [t]
  settings:
    security.protocol: SASL_SSL
    sasl.mechanism: PLAIN
    sasl.username: shovel
    sasl.password: ${env:TEST_SASL_PASSWORD}
consul: {token: "${file:`+tokenFile+`}"}
routes: [{decoder: slice, outputs: [g]}]
outputs: {g: {kind: carbon-pickle, address: "c:2004"}}
`, 0o600)
	c, err := Load(cfg)
	require.NoError(t, err)
	require.Equal(t, "s3cret-from-env", c.Kafka.Settings["sasl.password"])
	require.Equal(t, "tok-from-file", c.Consul.Token)
	require.NoError(t, c.Validate())

	warnings, err := SecretWarnings(cfg)
	require.NoError(t, err)
	require.Empty(t, warnings, "references are not literal secrets")
}

func TestSecretReferenceErrorsNameTheKeyNotTheValue(t *testing.T) {
	cfg := writeFile(t, "shovel.yaml", `
kafka: {brokers: k:9092, topics: [t], settings: {sasl.password: "${env:SHOVEL_TEST_UNSET_VAR}"}}
routes: [{decoder: slice, outputs: [g]}]
outputs: {g: {kind: carbon-pickle, address: "c:2004"}}
`, 0o600)
	_, err := Load(cfg)
	require.EqualError(t, err, "kafka.settings.sasl.password: environment variable SHOVEL_TEST_UNSET_VAR is not set")
}

// TestSecretFilesAreReadBounded: a ${file:} that is huge or never ends
// fails the load naming the key.
func TestSecretFilesAreReadBounded(t *testing.T) {
	big := writeFile(t, "big", strings.Repeat("a", MaxSecretBytes+1), 0o600)
	for _, tt := range []struct{ file, want string }{
		{big, "consul.token: " + big + ": too large: larger than the limit of 64 KiB"},
		{"/dev/zero", "consul.token: /dev/zero: not a regular file (it is a device, which could block or never end)"},
	} {
		cfg := writeFile(t, "shovel.yaml", `
kafka: {brokers: k:9092, topics: [t]}
consul: {token: "${file:`+tt.file+`}"}
routes: [{decoder: slice, outputs: [g]}]
outputs: {g: {kind: carbon-pickle, address: "c:2004"}}
`, 0o600)
		_, err := Load(cfg)
		require.EqualError(t, err, tt.want)
	}
}

func TestSecretWarningsForWorldReadableFiles(t *testing.T) {
	content := `
kafka:
  brokers: k:9092
  topics: [t]
  settings: {security.protocol: SASL_SSL, sasl.mechanism: PLAIN, sasl.username: u, sasl.password: hunter2}
routes: [{decoder: slice, outputs: [g]}]
outputs: {g: {kind: carbon-pickle, address: "c:2004"}}
`
	private := writeFile(t, "private.yaml", content, 0o600)
	w, err := SecretWarnings(private)
	require.NoError(t, err)
	require.Empty(t, w)

	public := writeFile(t, "public.yaml", content, 0o644)
	w, err = SecretWarnings(public)
	require.NoError(t, err)
	require.Len(t, w, 1)
	require.Contains(t, w[0], "is readable by every user")
	require.Contains(t, w[0], "sasl.password")
	require.False(t, strings.Contains(w[0], "hunter2"), "the warning must not print the secret")
}
