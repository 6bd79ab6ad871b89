package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/router/kafka"
	"github.com/shovel-metrics/shovel/router/metric"
)

func init() { subcommands = append(subcommands, newSendCmd) }

// sendOptions are the flags of `shovel send`.
type sendOptions struct {
	brokers, topic, key, split, cfgPath, logLevel string
	headers                                       []string
	partition                                     int32
}

// The ways send cuts its input into messages.
const (
	splitAuto   = "auto"      // binary: whole; a JSON stream: its documents; else lines
	splitLines  = "lines"     // one message per non-empty line
	splitJSONs  = "json"      // one message per JSON document (each may span lines)
	splitWhole  = "whole"     // each input (file or stdin) is one message, whatever it holds
	splitVarint = "delimited" // each message preceded by its length as a varint (protobuf's delimited stream)
)

func newSendCmd() *cobra.Command {
	o := sendOptions{partition: -1}
	cmd := &cobra.Command{
		Use:   "send -t TOPIC [FILE...|-]",
		Short: "Put messages into a Kafka topic: to try a route, a decoder or the dead-letter topic",
		Long: `send produces messages to a Kafka topic and waits until the broker has
each one. It reads the FILEs, or stdin, and cuts them into messages by
--split:

  auto       binary input whole, as shovel decode takes it; JSON documents
             when the input is a stream of them (each may span lines); else
             one message per line (the default)
  lines      one message per non-empty line
  json       one message per JSON document
  whole      each file (or stdin) is one message, whatever it holds: a pickle
             frame, a protobuf message, a multi-line Carbon plaintext batch
  delimited  messages each preceded by its length as a varint (protobuf's
             delimited stream, as shovel decode --delimited reads)

Every message gets --key, the --header NAME=VALUE pairs and --partition
(default: the one librdkafka picks). The brokers are -K's, or those of
--config's kafka.brokers, with its kafka.settings' security settings
(security.*, sasl.*, ssl.*). shovel demo --config prints the address of its
embedded broker for this.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			msgs, err := o.messages(cmd.InOrStdin(), args)
			if err != nil {
				return usageError{fmt.Errorf("send: %w", err)}
			}
			settings := map[string]any{}
			if o.cfgPath != "" {
				cfg, err := config.Check(o.cfgPath, config.Overrides{Kafka: o.brokers})
				if err != nil {
					return usageError{err}
				}
				o.brokers = strings.Join(cfg.Kafka.Brokers, ",")
				settings = kafka.InheritSecurity(cfg.Kafka.Settings)
			}
			if o.brokers == "" {
				o.brokers = "localhost:9092"
			}
			log := cliLogger(o.logLevel, cmd.ErrOrStderr())
			p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: o.brokers, Settings: settings}, log.With("component", "kafka"))
			if err != nil {
				return err
			}
			first, last := int64(-1), int64(-1)
			parts := map[int32]bool{}
			var sendErr error
			for i, m := range msgs {
				part, off, err := p.Produce(cmd.Context(), m)
				if err != nil {
					sendErr = fmt.Errorf("send: message %d of %d: %w", i+1, len(msgs), err)
					msgs = msgs[:i]
					break
				}
				parts[part] = true
				if first < 0 {
					first = off
				}
				last = off
			}
			closeErr := p.Close()
			where := fmt.Sprintf("%d partitions", len(parts))
			if len(parts) == 1 {
				for part := range parts {
					where = fmt.Sprintf("partition %d, offsets %d to %d", part, first, last)
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "shovel send: %d messages to %s at %s (%s)\n", len(msgs), o.topic, o.brokers, where)
			return errors.Join(sendErr, closeErr)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.brokers, "kafka", "K", "", "bootstrap servers host:port[,host:port] (default localhost:9092, or --config's)")
	f.StringVarP(&o.topic, "topic", "t", "", "the topic to send to (required)")
	f.StringVar(&o.key, "key", "", "the key of every message")
	f.StringArrayVar(&o.headers, "header", nil, "a record header NAME=VALUE on every message (repeatable)")
	f.Int32Var(&o.partition, "partition", -1, "the partition (default: the one librdkafka picks)")
	f.StringVar(&o.split, "split", splitAuto, "how the input becomes messages: auto, lines, json, whole or delimited")
	f.StringVar(&o.cfgPath, "config", "", "take the brokers and their security settings from this config")
	f.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

// messages reads the inputs and cuts them into messages.
func (o sendOptions) messages(stdin io.Reader, files []string) ([]*metric.Message, error) {
	headers, err := parseHeaders(o.headers)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	var values [][]byte
	for _, name := range files {
		in := stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			in = f
		}
		data, err := io.ReadAll(io.LimitReader(in, maxDecodeInput+1))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if len(data) > maxDecodeInput {
			return nil, fmt.Errorf("%s is larger than %d bytes", name, maxDecodeInput)
		}
		v, err := splitInput(data, o.split)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		values = append(values, v...)
	}
	if len(values) == 0 {
		return nil, errors.New("no messages in the input")
	}
	msgs := make([]*metric.Message, len(values))
	for i, v := range values {
		msgs[i] = &metric.Message{Topic: o.topic, Partition: o.partition, Value: v, Headers: headers}
		if o.key != "" {
			msgs[i].Key = []byte(o.key)
		}
	}
	return msgs, nil
}

// splitInput cuts data into messages as mode says.
func splitInput(data []byte, mode string) ([][]byte, error) {
	switch mode {
	case splitWhole:
		return [][]byte{data}, nil
	case splitVarint:
		return splitDelimited(data)
	case splitJSONs:
		msgs, ok := splitJSON(data)
		if !ok {
			return nil, errors.New("not a stream of JSON documents (use --split lines or whole)")
		}
		return msgs, nil
	case splitAuto, splitLines:
		if mode == splitAuto {
			if isBinary(data) {
				return [][]byte{data}, nil
			}
			if msgs, ok := splitJSON(data); ok {
				return msgs, nil
			}
		}
		var msgs [][]byte
		for _, line := range bytes.Split(data, []byte{'\n'}) {
			if line = bytes.TrimSpace(line); len(line) > 0 {
				msgs = append(msgs, line)
			}
		}
		return msgs, nil
	}
	return nil, fmt.Errorf("--split %q: use auto, lines, json, whole or delimited", mode)
}
