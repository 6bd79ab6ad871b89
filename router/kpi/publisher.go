package kpi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// DefaultTopic is the topic the Voltha components published KPIs to, and
// the one shovel's default config consumes.
const DefaultTopic = "voltha.kpis"

// Sender delivers one message to a topic. It returns once the broker has
// the message, or with an error; router/kafka.Producer is one.
type Sender interface {
	Send(ctx context.Context, topic string, key, value []byte) error
}

// DefaultPrefix is the object path a publisher uses when given none:
// "shovel.<host name>", with the host name as one path segment.
func DefaultPrefix() string { return "shovel." + Segment(hostName()) }

func hostName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return host
}

// Publisher sends a slice message with Source's measurements every
// Interval. The message key is the object path, so one publisher's
// messages stay in order on one partition. With Format FormatVolthaEvent
// it sends VOLTHA 2.x protobuf KPI events instead, as the openolt adapter
// does (Events).
type Publisher struct {
	Sender Sender
	// Format is FormatSlice (the default) or FormatVolthaEvent.
	Format string
	// Topic defaults to DefaultTopic, or VolthaTopic for FormatVolthaEvent.
	Topic string
	// Object is the object path the metrics are published under, for
	// example "shovel.host1"; it defaults to DefaultPrefix().
	Object string
	// Interval defaults to 5s.
	Interval time.Duration
	// Source defaults to Process{}.
	Source Source
	// DeviceID is the device id of FormatVolthaEvent's events; it
	// defaults to the host name.
	DeviceID string
	// Events makes FormatVolthaEvent's events; it defaults to OLTEvents.
	Events func(now time.Time, deviceID string) ([]Event, error)
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now defaults to time.Now; tests set it.
	Now func() time.Time

	buf  []byte
	msg  Slice
	sent int       // samples in the last interval's messages
	down time.Time // when the current failure streak started; zero when delivering
	told time.Time // when the failure streak was last logged
}

// DefaultInterval is how often a Publisher publishes when Interval is zero.
const DefaultInterval = 5 * time.Second

// failureLogEvery bounds how often a Publisher logs the same outage.
const failureLogEvery = time.Minute

func (p *Publisher) defaults() {
	if p.Format == "" {
		p.Format = FormatSlice
	}
	if p.Topic == "" {
		p.Topic = DefaultTopic
		if p.Format == FormatVolthaEvent {
			p.Topic = VolthaTopic
		}
	}
	if p.DeviceID == "" {
		p.DeviceID = hostName()
	}
	if p.Events == nil {
		p.Events = OLTEvents
	}
	if p.Object == "" {
		p.Object = DefaultPrefix()
	}
	if p.Interval <= 0 {
		p.Interval = DefaultInterval
	}
	if p.Source == nil {
		p.Source = Process{}
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Now == nil {
		p.Now = time.Now
	}
}

// Publish collects and sends one message now. It is not safe for
// concurrent use (Run calls it from one goroutine).
func (p *Publisher) Publish(ctx context.Context) error {
	p.defaults()
	if p.Sender == nil {
		return errors.New("kpi: publisher has no Sender")
	}
	if p.Format == FormatVolthaEvent {
		return p.publishEvents(ctx)
	}
	if p.Format != FormatSlice {
		return fmt.Errorf("kpi: unknown format %q (known: %s, %s)", p.Format, FormatSlice, FormatVolthaEvent)
	}
	p.msg.Reset(p.Now())
	if err := p.Source.Collect(&p.msg, p.Object); err != nil {
		return fmt.Errorf("kpi: collect: %w", err)
	}
	var err error
	if p.buf, err = p.msg.AppendJSON(p.buf[:0]); err != nil {
		return err
	}
	if err := p.Sender.Send(ctx, p.Topic, []byte(p.Object), p.buf); err != nil {
		return fmt.Errorf("kpi: publish to %s: %w", p.Topic, err)
	}
	p.sent = p.msg.Len()
	return nil
}

// publishEvents sends one protobuf event per Event, keyed by raise time
// as the adapters key them.
func (p *Publisher) publishEvents(ctx context.Context) error {
	events, err := p.Events(p.Now(), p.DeviceID)
	if err != nil {
		return fmt.Errorf("kpi: collect: %w", err)
	}
	p.sent = 0
	for i := range events {
		if p.buf, err = events[i].AppendProto(p.buf[:0]); err != nil {
			return err
		}
		if err := p.Sender.Send(ctx, p.Topic, events[i].Key(), p.buf); err != nil {
			return fmt.Errorf("kpi: publish to %s: %w", p.Topic, err)
		}
		p.sent += len(events[i].Metrics)
	}
	return nil
}

// Run publishes at once and then every Interval until ctx ends, and
// returns nil then. A failed publish is logged (once per outage, then at
// most once a minute) and does not stop it: a KPI is a sample, and the
// next one follows.
func (p *Publisher) Run(ctx context.Context) error {
	p.defaults()
	if p.Sender == nil {
		return errors.New("kpi: publisher has no Sender")
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		// A send may wait for the broker up to one interval; then the
		// next measurement is due.
		sctx, cancel := context.WithTimeout(ctx, max(p.Interval, time.Second))
		err := p.Publish(sctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		p.report(err)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *Publisher) report(err error) {
	now := p.Now()
	switch {
	case err == nil && !p.down.IsZero():
		p.Logger.Info("publishing KPIs again", "topic", p.Topic, "down_for", now.Sub(p.down).Round(time.Second))
		p.down = time.Time{}
	case err == nil:
		p.Logger.Debug("published KPIs", "topic", p.Topic, "format", p.Format, "samples", p.sent)
	case p.down.IsZero():
		p.down, p.told = now, now
		p.Logger.Warn("cannot publish KPIs; will keep trying", "topic", p.Topic, "err", err)
	case now.Sub(p.told) >= failureLogEvery:
		p.told = now
		p.Logger.Warn("still cannot publish KPIs", "topic", p.Topic, "err", err, "down_for", now.Sub(p.down).Round(time.Second))
	}
}
