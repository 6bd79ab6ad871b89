package kafka

import (
	"context"
	"log/slog"
	"strings"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/shovel-metrics/shovel/router/internal/ratelimit"
)

// forwardLogs sends librdkafka's own log lines (syslog levels) to slog, so
// an operator reads one log stream; it closes done when logs is closed.
func forwardLogs(logs <-chan ck.LogEvent, log *slog.Logger, done chan<- struct{}) {
	forwardLogsLimited(logs, log, done, nil)
}

// forwardLogsLimited is forwardLogs letting through, when limit is not nil,
// one line per librdkafka tag (a small fixed set: "FAIL", "GETSUBSCRIPTIONS")
// per interval, with the count held back.
func forwardLogsLimited(logs <-chan ck.LogEvent, log *slog.Logger, done chan<- struct{}, limit *ratelimit.Limiter) {
	defer close(done)
	if logs == nil {
		// Settings turned go.logs.channel.enable off: librdkafka writes to
		// stderr, and a nil channel would never close.
		return
	}
	for ev := range logs {
		lvl := slog.LevelDebug
		switch {
		case ev.Level <= 3:
			lvl = slog.LevelError
		case ev.Level == 4:
			lvl = slog.LevelWarn
		case ev.Level <= 6:
			lvl = slog.LevelInfo
		}
		if lvl == slog.LevelInfo && routineNotice(ev) {
			lvl = slog.LevelDebug
		}
		attrs := []any{"source", "librdkafka", "tag", ev.Tag}
		if limit != nil {
			n, ok := limit.Allow("librdkafka:" + ev.Tag)
			if !ok {
				continue
			}
			if n > 0 {
				attrs = append(attrs, "suppressed", n)
			}
		}
		log.Log(context.Background(), lvl, ev.Message, attrs...)
	}
}

// routineNotice reports librdkafka notices that every client prints at
// start-up and that ask nothing of an operator: the KIP-714 telemetry
// client instance id ("Telemetry client instance id changed from … to …").
func routineNotice(ev ck.LogEvent) bool {
	return strings.HasPrefix(strings.TrimPrefix(ev.Message, "[thrd:main]: "), "Telemetry client instance id changed")
}
