package kafka

import (
	"fmt"
	"strings"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// classicOnly are shovel's default properties that only the classic group
// protocol knows; under KIP-848 the broker sets the session and heartbeat.
var classicOnly = []string{"session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"}

// consumerProtocol reports whether kafka.settings chooses KIP-848's
// consumer group protocol (group.protocol: consumer).
func consumerProtocol(settings map[string]any) bool {
	v, ok := settings["group.protocol"]
	return ok && strings.EqualFold(fmt.Sprint(v), "consumer")
}

// stopFor decides whether an error that librdkafka reports stops the
// consumer, and with which message. librdkafka retries everything else
// itself (a broker down, a leader moving), so those are only logged.
//
// Stopping: a fatal error (static membership fencing among them); a
// failed authentication or TLS handshake (either side refusing the other's
// certificate) before the consumer has joined
// its group, since no retry fixes a wrong password or an untrusted
// certificate and start-up must not hang on them; and a refused
// authorization at any time, since the consumer would otherwise sit idle
// without a word.
func (k *Consumer) stopFor(e ck.Error) error {
	code := e.Code()
	switch {
	case code == ck.ErrFencedInstanceID || code == ck.ErrFenced:
		return fmt.Errorf("kafka: group %q: another consumer joined with this process's group.instance.id %q and took its place; "+
			"every shovel of a group needs its own kafka.instance_id (leave it unset for one per host, or set it to \"none\"): %w",
			k.cfg.Group, k.instanceID(), e)
	case code == ck.ErrUnreleasedInstanceID:
		return fmt.Errorf("kafka: group %q: group.instance.id %q is held by another live member of the group (or, after a crash, "+
			"by this shovel's previous run until the broker's group.consumer.session.timeout.ms), so the broker refused this one; "+
			"every shovel of a group needs its own kafka.instance_id (leave it unset for one per host, or set it to \"none\"): %w",
			k.cfg.Group, k.instanceID(), e)
	case e.IsFatal():
		return fmt.Errorf("kafka: fatal error: %w", e)
	case code == ck.ErrTopicAuthorizationFailed:
		return fmt.Errorf("kafka: not allowed to read topic(s) %s: grant this user READ and DESCRIBE on them: %w",
			strings.Join(k.cfg.Topics, ","), e)
	case code == ck.ErrGroupAuthorizationFailed:
		return fmt.Errorf("kafka: not allowed to use consumer group %q: grant this user READ on the group: %w", k.cfg.Group, e)
	case !k.joined.Load() && (code == ck.ErrAuthentication || code == ck.ErrSaslAuthenticationFailed):
		return fmt.Errorf("kafka: authentication to %s failed (check the sasl.* settings in kafka.settings): %w", k.cfg.Brokers, e)
	case !k.joined.Load() && (code == ck.ErrSsl || code == ck.ErrTransport && tlsAlert(e)):
		return fmt.Errorf("kafka: TLS with %s failed (check the ssl.* settings in kafka.settings): %w", k.cfg.Brokers, e)
	}
	return nil
}

// tlsAlert reports whether a transport error is the broker refusing the
// TLS handshake with an alert (a client certificate it does not trust, or
// none): librdkafka reports that as a failed receive, not as an SSL error,
// since the client's side of the handshake had succeeded.
func tlsAlert(e ck.Error) bool {
	s := e.String()
	return strings.Contains(s, "SSL routines") && strings.Contains(s, "alert")
}

func (k *Consumer) instanceID() string {
	if k.instance == nil {
		return ""
	}
	return k.instance.id
}
