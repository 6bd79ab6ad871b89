package carbon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/shovel-metrics/shovel/internal/limitedfile"
)

// TLSConfig is the tls: block of the carbon outputs. Carbon itself speaks
// no TLS; this is for a TLS-terminating proxy in front of it (stunnel,
// HAProxy, nginx stream, or a relay with TLS listeners such as
// carbon-c-relay's "transport ... ssl").
type TLSConfig struct {
	// Enabled turns TLS on; the other keys need it.
	Enabled bool `mapstructure:"enabled"`
	// CA is a PEM file of the certificates to trust instead of the
	// system's roots.
	CA string `mapstructure:"ca"`
	// Cert and Key are the PEM client certificate and its key, for mutual
	// TLS. Both or neither.
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
	// ServerName is the name checked against the server's certificate and
	// sent in SNI; by default the host of the address dialled.
	ServerName string `mapstructure:"server_name"`
}

// Validate checks the block without any I/O; errors name the key.
func (c *TLSConfig) Validate() error {
	if !c.Enabled {
		if c.CA != "" || c.Cert != "" || c.Key != "" || c.InsecureSkipVerify || c.ServerName != "" {
			return errors.New("tls.enabled: is false, but other tls keys are set; set enabled: true or remove them")
		}
		return nil
	}
	switch {
	case c.Cert != "" && c.Key == "":
		return errors.New("tls.key: missing; tls.cert needs the key that goes with it")
	case c.Key != "" && c.Cert == "":
		return errors.New("tls.cert: missing; tls.key needs the certificate that goes with it")
	case c.InsecureSkipVerify && c.CA != "":
		return errors.New("tls.insecure_skip_verify: set together with tls.ca, which it would ignore")
	case c.InsecureSkipVerify && c.ServerName != "":
		return errors.New("tls.insecure_skip_verify: set together with tls.server_name, which it would not check")
	}
	return nil
}

// MaxPEMBytes is the largest CA bundle, certificate or key file Build
// reads: a whole public CA bundle is about 200 KiB.
const MaxPEMBytes = 1 << 20

// Build reads the files the block names and returns the client TLS
// config, or nil when TLS is off. Its errors name the key and the file.
func (c *TLSConfig) Build() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, // asked for explicitly; Validate keeps it apart from ca
	}
	if c.CA != "" {
		pem, err := limitedfile.Read(c.CA, MaxPEMBytes)
		if err != nil {
			return nil, fmt.Errorf("tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca: no PEM certificate in %s", c.CA)
		}
		cfg.RootCAs = pool
	}
	if c.Cert != "" {
		cert, err := limitedfile.Read(c.Cert, MaxPEMBytes)
		if err != nil {
			return nil, fmt.Errorf("tls.cert: %w", err)
		}
		key, err := limitedfile.Read(c.Key, MaxPEMBytes)
		if err != nil {
			return nil, fmt.Errorf("tls.key: %w", err)
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("tls.cert, tls.key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
