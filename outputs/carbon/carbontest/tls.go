package carbontest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ListenPickleTLS starts a pickle receiver behind TLS with config (as a
// TLS-terminating proxy in front of Carbon would be) on a free loopback
// port. Set config.ClientAuth to require client certificates.
func ListenPickleTLS(t testing.TB, config *tls.Config) *Listener {
	return listenWrapped(t, true, "127.0.0.1:0", func(ln net.Listener) net.Listener { return tls.NewListener(ln, config) })
}

// ListenPlaintextTLS starts a plaintext receiver behind TLS with config.
func ListenPlaintextTLS(t testing.TB, config *tls.Config) *Listener {
	return listenWrapped(t, false, "127.0.0.1:0", func(ln net.Listener) net.Listener { return tls.NewListener(ln, config) })
}

// CA is a certificate authority made up for one test. Its files live in
// the test's temporary directory.
type CA struct {
	t    testing.TB
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// CertFile is the CA certificate, PEM: what a client's tls.ca names.
	CertFile string
	// Pool trusts the CA, for a server's ClientCAs.
	Pool *x509.CertPool
}

// Issued is a certificate the CA signed, with its key, as files and as a
// tls.Certificate.
type Issued struct {
	CertFile, KeyFile string
	TLS               tls.Certificate
}

// NewCA makes a CA with an ECDSA P-256 key, valid for an hour.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("carbontest: CA key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "carbontest CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("carbontest: CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("carbontest: CA certificate: %v", err)
	}
	ca := &CA{t: t, dir: t.TempDir(), cert: cert, key: key, Pool: x509.NewCertPool()}
	ca.Pool.AddCert(cert)
	ca.CertFile = ca.write("ca.pem", "CERTIFICATE", der)
	return ca
}

// Server issues a server certificate for 127.0.0.1 and the DNS names given.
func (ca *CA) Server(dnsNames ...string) Issued {
	return ca.issue("server", x509.ExtKeyUsageServerAuth, dnsNames, []net.IP{net.IPv4(127, 0, 0, 1)})
}

// Client issues a client certificate with common name cn.
func (ca *CA) Client(cn string) Issued {
	return ca.issue(cn, x509.ExtKeyUsageClientAuth, nil, nil)
}

// ServerConfig is a TLS server config with a certificate from ca; with
// requireClient, clients must present a certificate ca signed.
func (ca *CA) ServerConfig(requireClient bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{ca.Server("localhost").TLS}, MinVersion: tls.VersionTLS12}
	if requireClient {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = ca.Pool
	}
	return cfg
}

func (ca *CA) issue(cn string, usage x509.ExtKeyUsage, dnsNames []string, ips []net.IP) Issued {
	t := ca.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("carbontest: key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatalf("carbontest: serial: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("carbontest: certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("carbontest: key: %v", err)
	}
	name := cn + "-" + serial.String()
	is := Issued{
		CertFile: ca.write(name+".pem", "CERTIFICATE", der),
		KeyFile:  ca.write(name+"-key.pem", "PRIVATE KEY", keyDER),
	}
	is.TLS, err = tls.LoadX509KeyPair(is.CertFile, is.KeyFile)
	if err != nil {
		t.Fatalf("carbontest: key pair: %v", err)
	}
	return is
}

func (ca *CA) write(name, blockType string, der []byte) string {
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		ca.t.Fatalf("carbontest: %v", err)
	}
	return path
}
