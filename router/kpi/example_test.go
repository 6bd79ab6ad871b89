package kpi_test

import (
	"context"
	"fmt"
	"time"

	"github.com/shovel-metrics/shovel/router/kpi"
)

// printSender stands in for router/kafka.Producer, which sends to Kafka.
type printSender struct{}

func (printSender) Send(_ context.Context, topic string, key, value []byte) error {
	fmt.Printf("%s [%s] %s\n", topic, key, value)
	return nil
}

func Example() {
	// Build a message by hand...
	msg := kpi.NewSlice(time.Unix(1480000000, 0)).
		Add("voltha.internal.abc", "deferreds", 12).
		Add("voltha.internal.abc", "rss-mb", 80.5)
	b, err := msg.MarshalJSON()
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	for _, s := range msg.Samples() {
		fmt.Printf("%s %g %.0f\n", s.Path, s.Value, s.Time)
	}

	// ...or let a Publisher collect and send one every Interval. Programs
	// use kpi.Process{} as the Source and a router/kafka.Producer as the
	// Sender, and call Run until they stop.
	p := &kpi.Publisher{
		Sender: printSender{},
		Object: "myapp.host1",
		Source: kpi.SourceFunc(func(s *kpi.Slice, object string) error {
			s.Add(object, "queue-depth", 3)
			return nil
		}),
		Now: func() time.Time { return time.Unix(1480000005, 250e6) },
	}
	if err := p.Publish(context.Background()); err != nil {
		panic(err)
	}
	// Output:
	// {"type":"slice","ts":1480000000,"data":{"voltha.internal.abc":{"deferreds":12,"rss-mb":80.5}}}
	// voltha.internal.abc.deferreds 12 1480000000
	// voltha.internal.abc.rss-mb 80.5 1480000000
	// voltha.kpis [myapp.host1] {"type":"slice","ts":1480000005.25,"data":{"myapp.host1":{"queue-depth":3}}}
}
