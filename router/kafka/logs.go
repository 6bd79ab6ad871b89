package kafka

import (
	"context"
	"log/slog"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// forwardLogs sends librdkafka's own log lines (syslog levels) to slog, so
// an operator reads one log stream; it closes done when logs is closed.
func forwardLogs(logs <-chan ck.LogEvent, log *slog.Logger, done chan<- struct{}) {
	defer close(done)
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
		log.Log(context.Background(), lvl, ev.Message, "source", "librdkafka", "tag", ev.Tag)
	}
}
