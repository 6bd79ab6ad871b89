package kafkabroker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certs are PEM files for the cluster's TLS listeners: a CA, the brokers'
// key and certificate, a client key and certificate that CA signed (CN
// "shovel"), and a second CA that signed nothing the cluster trusts.
type Certs struct {
	CA string
	// ServerKeystore holds the brokers' private key and certificate (Kafka's
	// PEM keystore).
	ServerKeystore string
	ClientCert     string
	ClientKey      string
	// OtherCA signed OtherClientCert/OtherClientKey: a client the cluster
	// does not trust, and a CA that does not vouch for the brokers.
	OtherCA         string
	OtherClientCert string
	OtherClientKey  string
}

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func writeCerts(dir string) (*Certs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := newCert("shovel test CA", nil, true)
	if err != nil {
		return nil, err
	}
	server, err := newCert("kafka", ca, false)
	if err != nil {
		return nil, err
	}
	client, err := newCert("shovel", ca, false)
	if err != nil {
		return nil, err
	}
	other, err := newCert("untrusted CA", nil, true)
	if err != nil {
		return nil, err
	}
	stranger, err := newCert("shovel", other, false)
	if err != nil {
		return nil, err
	}
	c := &Certs{
		CA: filepath.Join(dir, "ca.pem"), ServerKeystore: filepath.Join(dir, "server.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
		OtherCA: filepath.Join(dir, "other-ca.pem"), OtherClientCert: filepath.Join(dir, "other-client.pem"),
		OtherClientKey: filepath.Join(dir, "other-client-key.pem"),
	}
	serverKey, err := keyPEM(server.key)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		data []byte
	}{
		{c.CA, certPEM(ca)},
		{c.ServerKeystore, append(serverKey, certPEM(server)...)},
		{c.ClientCert, certPEM(client)},
		{c.OtherCA, certPEM(other)},
		{c.OtherClientCert, certPEM(stranger)},
	} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		path string
		kp   *keyPair
	}{{c.ClientKey, client}, {c.OtherClientKey, stranger}} {
		b, err := keyPEM(f.kp.key)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(f.path, b, 0o600); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func newCert(cn string, parent *keyPair, isCA bool) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"shovel tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key, der: der}, nil
}

func certPEM(kp *keyPair) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.der})
}

// keyPEM is PKCS#8, unencrypted: what Kafka's PEM keystore reads.
func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
