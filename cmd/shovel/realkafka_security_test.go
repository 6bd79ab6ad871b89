//go:build linux

package main

// Security on Apache Kafka: SASL/SCRAM-SHA-512 over TLS and mutual TLS
// consume; a wrong password, an untrusted certificate or a topic the user
// may not read stop start-up quickly with an error that says what is wrong
// and holds no secret.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
	"github.com/shovel-metrics/shovel/router/kafka/kafkabroker"
)

// startupBound is how long a start-up that cannot succeed may take to say so.
const startupBound = 20 * time.Second

func TestRealKafkaSecurity(t *testing.T) {
	const password, wrong, limitedPassword = "s3cret-scram-pass", "not-the-password", "limited-pass-123"
	c := kafkabroker.Start(t, kafkabroker.Options{
		SCRAMUsers: map[string]string{"shovel": password, "limited": limitedPassword},
		TLS:        true,
		ACLs:       true,
	})
	const topic, secret = "kpis.secure", "kpis.secret"
	c.CreateTopic(t, kafkabroker.Topic{Name: topic, Partitions: 2})
	c.CreateTopic(t, kafkabroker.Topic{Name: secret, Partitions: 1})
	// "shovel" is both the SCRAM user and the client certificate's CN.
	for _, g := range []string{"sec-scram", "sec-mtls", "sec-wrong", "sec-untrusted", "sec-stranger"} {
		c.AllowRead(t, "User:shovel", topic, g)
	}
	c.AllowGroup(t, "User:limited", "sec-limited")
	c.AllowRead(t, "User:limited", topic, "sec-limited") // the topic, but not the secret one
	kpis := sliceKPIs("secure", 300, recent())
	want := produceTo(t, c, topic, 2, kpis)
	c.Produce(t, produceRecs(secret, 1, sliceKPIs("hidden", 10, recent()))...)
	certs := c.Certs

	scram := func(user, pass, ca string) string {
		return fmt.Sprintf("{security.protocol: SASL_SSL, sasl.mechanism: SCRAM-SHA-512, sasl.username: %s, sasl.password: %q, ssl.ca.location: %q}",
			user, pass, ca)
	}
	mtls := func(ca, cert, key string) string {
		return fmt.Sprintf("{security.protocol: SSL, ssl.ca.location: %q, ssl.certificate.location: %q, ssl.key.location: %q}", ca, cert, key)
	}

	for _, tt := range []struct {
		name, brokers, group, settings string
		topics                         string
	}{
		{"scram-sha-512 over tls", c.SASLAddr(), "sec-scram", scram("shovel", password, certs.CA), topic},
		{"mutual tls", c.TLSAddr(), "sec-mtls", mtls(certs.CA, certs.ClientCert, certs.ClientKey), topic},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pickle := carbontest.ListenPickle(t)
			cfg := writeConfig(t, pickleConfig(tt.brokers, tt.topics, tt.group, pickle.Addr(), "127.0.0.1:"+deadPort(t), tt.settings))
			sh := startShovel(t, "route", "--config", cfg)
			require.Eventually(t, func() bool { return pickle.Len() >= len(want) }, 60*time.Second, 10*time.Millisecond,
				"got %d of %d samples", pickle.Len(), len(want))
			require.Equal(t, 0, sh.stop(t))
			require.Equal(t, sortSamples(want), sortSamples(pickle.Samples()))
			require.EqualValues(t, len(kpis), c.CommittedTotal(t, tt.group, topic))
		})
	}

	for _, tt := range []struct {
		name, brokers, group, settings, topics string
		want                                   []string // in the error
	}{
		{"wrong password", c.SASLAddr(), "sec-wrong", scram("shovel", wrong, certs.CA), topic,
			[]string{"kafka: authentication to " + c.SASLAddr() + " failed", "sasl.*", "invalid credentials"}},
		{"broker certificate not trusted", c.SASLAddr(), "sec-untrusted", scram("shovel", password, certs.OtherCA), topic,
			[]string{"kafka: TLS with " + c.SASLAddr() + " failed", "ssl.*", "certificate verify failed"}},
		{"client certificate not trusted", c.TLSAddr(), "sec-stranger", mtls(certs.CA, certs.OtherClientCert, certs.OtherClientKey), topic,
			[]string{"kafka: TLS with " + c.TLSAddr() + " failed", "ssl.*", "alert"}},
		{"topic not allowed", c.SASLAddr(), "sec-limited", scram("limited", limitedPassword, certs.CA), secret,
			[]string{"kafka: not allowed to read topic(s) " + secret, "READ and DESCRIBE"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pickle := carbontest.ListenPickle(t)
			cfg := writeConfig(t, pickleConfig(tt.brokers, tt.topics, tt.group, pickle.Addr(), "127.0.0.1:"+deadPort(t), tt.settings))
			start := time.Now()
			sh := startShovel(t, "route", "--config", cfg)
			var code int
			select {
			case code = <-sh.code:
			case <-time.After(startupBound):
				t.Fatalf("shovel still running %v after start; log:\n%s", startupBound, sh.logs)
			}
			took := time.Since(start)
			logs := sh.logs.String()
			require.NotZero(t, code)
			for _, w := range tt.want {
				require.Contains(t, logs, w)
			}
			for _, s := range []string{password, wrong, limitedPassword} {
				require.NotContains(t, logs, s, "no secret in the log")
			}
			require.Zero(t, pickle.Len())
			t.Logf("exited with %d after %v: %s", code, took.Round(time.Millisecond), errorLine(logs))
		})
	}
}

// errorLine is the log line that carries the consumer's stop error.
func errorLine(logs string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "kafka consumer stopped") {
			return l
		}
	}
	return lastLine(logs)
}
