package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/configs"
)

// transcriptRE finds the transcripts of README.md and docs/*.md: a text
// block whose first line is "$ shovel ARGS", the rest what it prints
// (stdout and stderr together). A "…" in a line stands for any text.
var transcriptRE = regexp.MustCompile("(?s)```text\n\\$ shovel ([^\n]*)\n(.*?)```")

// TestDocsTranscripts runs every transcript of the documentation from the
// repository's root and requires exactly what it shows.
func TestDocsTranscripts(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../../README.md")
	t.Chdir("../..")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(strings.TrimPrefix(f, "../../"))
		require.NoError(t, err)
		for _, m := range transcriptRE.FindAllStringSubmatch(string(data), -1) {
			n++
			args, want := strings.Fields(m[1]), strings.Split(strings.TrimSuffix(m[2], "\n"), "\n")
			t.Run(filepath.Base(f)+": shovel "+m[1], func(t *testing.T) {
				var out bytes.Buffer
				run(context.Background(), args, &out, &out)
				got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
				require.Len(t, got, len(want), "output:\n%s", out.String())
				for i, w := range want {
					if strings.Contains(w, "…") {
						parts := strings.Split(w, "…")
						for j := range parts {
							parts[j] = regexp.QuoteMeta(parts[j])
						}
						require.Regexp(t, "^"+strings.Join(parts, ".*")+"$", got[i], "line %d", i+1)
						continue
					}
					require.Equal(t, w, got[i], "line %d", i+1)
				}
			})
		}
	}
	require.NotZero(t, n, "the docs have transcripts")
}

// TestReadmeFirstConfig runs the README's "A first config" as written:
// the file passes config check, and the message shown decodes into the
// sample it names, through the route to its output. (shovel route itself
// needs the Kafka and Carbon the file names; the route tests cover it.)
func TestReadmeFirstConfig(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	section := string(readme[bytes.Index(readme, []byte("## A first config")):])
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(section)
	require.NotNil(t, m, "the section has a YAML block")
	path := filepath.Join(t.TempDir(), "shovel.yaml")
	require.NoError(t, os.WriteFile(path, []byte(m[1]), 0o600))
	require.Contains(t, section, "shovel config check shovel.yaml")
	code, out, errOut := runCaptured(t, "config", "check", path)
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "ok\n", out)

	require.Contains(t, section, `echo '{"type":"slice","ts":'$(date +%s)',"data":{"voltha.internal.abc":{"deferreds":12}}}'`)
	ts := time.Now().Unix()
	msg := fmt.Sprintf(`{"type":"slice","ts":%d,"data":{"voltha.internal.abc":{"deferreds":12}}}`, ts)
	code, out, errOut = decodeRun(t, msg+"\n", "--config", path)
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, fmt.Sprintf("voltha.internal.abc.deferreds 12 %d\n", ts), out)
	require.Equal(t, "route routes[0]: decoder slice, 1 samples to graphite\n", errOut)

	require.Contains(t, section, "shovel config sample")
	code, out, _ = runCaptured(t, "config", "sample")
	require.Equal(t, exitOK, code)
	require.Equal(t, string(configs.Default), out)
}

// TestShippedConfigsPassCheck: every config the repository ships passes
// `shovel config check`. kafka-tls-sasl.yaml names certificate files that
// shovel reads at start-up; as its header says, they are pointed at files
// of the test's own through SHOVEL_* variables.
func TestShippedConfigsPassCheck(t *testing.T) {
	// From the repository's root, as the examples' comments run them:
	// relative file paths in a config (configs/protobuf-decoder.yaml's
	// proto:) are taken from the working directory.
	t.Chdir(filepath.Join("..", ".."))
	files, err := filepath.Glob("configs/*.yaml")
	require.NoError(t, err)
	files = append(files, "deploy/shovel.yaml")
	require.GreaterOrEqual(t, len(files), 4)
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if filepath.Base(f) == "kafka-tls-sasl.yaml" {
				t.Setenv("SHOVEL_OUTPUTS_GRAPHITE_TLS_CA", certFile)
				t.Setenv("SHOVEL_OUTPUTS_GRAPHITE_TLS_CERT", certFile)
				t.Setenv("SHOVEL_OUTPUTS_GRAPHITE_TLS_KEY", keyFile)
			}
			code, out, errOut := runCaptured(t, "config", "check", f)
			require.Equal(t, exitOK, code, errOut)
			require.Equal(t, "ok\n", out)
		})
	}
}

// writeSelfSigned writes a self-signed certificate and its key as PEM.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shovel-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

// TestDocsLinksResolve: every relative link of README.md and docs/*.md
// names a file that exists.
func TestDocsLinksResolve(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../../README.md")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			_, err := os.Stat(filepath.Join(filepath.Dir(f), target))
			require.NoError(t, err, "%s links to %s", filepath.Base(f), target)
		}
	}
}

// TestDocsCommandsParse: every shovel command line in the sh blocks of
// README.md and docs/*.md names a command that exists and flags it takes
// (placeholders in capitals stand for a value). Those that need no Kafka
// or Carbon run in TestDocsTranscripts and TestReadmeFirstConfig.
func TestDocsCommandsParse(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../../README.md")
	block := regexp.MustCompile("(?s)```sh\n(.*?)```")
	placeholder := regexp.MustCompile(`^[A-Z][A-Z_]*$`)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, b := range block.FindAllStringSubmatch(string(data), -1) {
			for _, line := range strings.Split(strings.ReplaceAll(b[1], "\\\n", " "), "\n") {
				line, _, _ = strings.Cut(line, " #")
				for _, part := range strings.Split(line, "|") {
					fields := strings.Fields(part)
					for len(fields) > 0 && strings.Contains(fields[0], "=") { // VAR=value shovel ...
						fields = fields[1:]
					}
					if len(fields) < 2 || (fields[0] != "shovel" && fields[0] != "bin/shovel") {
						continue
					}
					args := fields[1:]
					for i, a := range args {
						if placeholder.MatchString(a) || strings.ContainsAny(a, "$<>") {
							args[i] = "1"
						}
					}
					n++
					root := newRootCmd(io.Discard, io.Discard)
					cmd, rest, err := root.Find(args)
					require.NoError(t, err, "%s: shovel %s", filepath.Base(f), strings.Join(args, " "))
					require.NotEqual(t, root, cmd, "%s: shovel %s names no command", filepath.Base(f), strings.Join(args, " "))
					require.NoError(t, cmd.ParseFlags(rest), "%s: shovel %s", filepath.Base(f), strings.Join(args, " "))
				}
			}
		}
	}
	require.Greater(t, n, 10, "the docs' commands were found")
}
