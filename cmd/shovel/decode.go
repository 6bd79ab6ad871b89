package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/outputs/carbon"
	"github.com/shovel-metrics/shovel/router"
	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

func init() { subcommands = append(subcommands, newDecodeCmd) }

// maxDecodeInput bounds what `shovel decode` reads: more than any decoder
// accepts in one message, with room for many messages.
const maxDecodeInput = 256 << 20

// wholeInputKinds are the decoders whose messages are not JSON: the whole
// input is one message.
var wholeInputKinds = map[string]bool{"carbon-plaintext": true, "carbon-pickle": true, "voltha-event": true, "protobuf": true}

func newDecodeCmd() *cobra.Command {
	var cfgPath, typ, decoderName, topic, now string
	var headers []string
	var whole, hexInput, delimited bool
	cmd := &cobra.Command{
		Use:   "decode [FILE|-]",
		Short: "Dry-run the router on messages from a file or stdin: print what it would write",
		Long: `decode shows what the router would do with each message, without Kafka or
Carbon: it builds the router from the config and runs every message through
the router's own code — route matching, the decoder, the route's rules, the
sample checks and the time window — but delivers nothing.

It reads FILE (or stdin): one or more JSON documents (each may span lines),
or one message per line when the input is not a JSON stream; with --whole,
the whole input is one message, as a Kafka record would be. Binary input
(bytes that are not text, such as a protobuf message) is one message too;
with --delimited it is a stream of messages each preceded by its length as
a varint (protobuf's delimited format: writeDelimitedTo, protodelim). --hex
reads the input as hexadecimal first (whitespace ignored, as xxd -p writes
it): a VOLTHA event copied from a log or a Kafka tool. Messages are
routed by their "type", --topic and --header, as the router routes them.
--type stands for the "type" of messages that have none; --decoder skips the
routes and decodes every message with that decoder (the time window and the
checks still apply, the rules of no route do). A decoder of Carbon plaintext
or pickle, or of protobuf (voltha-event, protobuf), given with --decoder,
takes the whole input as one message unless --delimited.

Samples are printed on stdout as Carbon plaintext lines ("path value ts"),
exactly as the outputs would get them. On stderr, a line per route taken says
which decoder and outputs, and every rejection is printed with the router's
own reason (and, for a whole message, whether it goes to the dead-letter
topic). Messages a decoder skips as not its own (such as VOLTHA device
events) are printed as "skip"; they are not rejections. The exit status is 1
if anything was rejected.

The time window (timestamps: in the config) is judged by the clock; give
--now to replay captured messages as of their time.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if typ != "" && decoderName != "" {
				return usageError{errors.New("decode: --type and --decoder exclude each other")}
			}
			cfg, err := config.Check(cfgPath, config.Overrides{})
			if err != nil {
				return usageError{err}
			}
			var opts []config.BuildOption
			if now != "" {
				t, err := parseNow(now)
				if err != nil {
					return usageError{fmt.Errorf("decode: --now: %w", err)}
				}
				opts = append(opts, config.WithClock(func() time.Time { return t }))
			}
			msgHeaders, err := parseHeaders(headers)
			if err != nil {
				return usageError{fmt.Errorf("decode: %w", err)}
			}
			in := cmd.InOrStdin()
			name := "-"
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return usageError{fmt.Errorf("decode: %w", err)}
				}
				defer f.Close()
				in, name = f, args[0]
			}
			d, err := newDryRun(cfg, typ, decoderName, topic, msgHeaders, opts)
			if err != nil {
				return usageError{fmt.Errorf("decode: %w", err)}
			}
			d.whole = d.whole || whole
			d.delimited = delimited
			data, err := io.ReadAll(io.LimitReader(in, maxDecodeInput+1))
			if err != nil {
				return fmt.Errorf("decode: read %s: %w", name, err)
			}
			if len(data) > maxDecodeInput {
				return usageError{fmt.Errorf("decode: %s is larger than %d bytes", name, maxDecodeInput)}
			}
			if hexInput {
				if data, err = fromHex(data); err != nil {
					return usageError{fmt.Errorf("decode: --hex: %s: %w", name, err)}
				}
			}
			return d.run(data, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config whose routes, decoders and window to use (default: the built-in one)")
	f.StringVar(&typ, "type", "", `the "type" of messages that have none, for routing`)
	f.StringVar(&decoderName, "decoder", "", "skip the routes: decode every message with this decoder (an entry of decoders: or a registered decoder)")
	f.StringVar(&topic, "topic", "", "the Kafka topic the messages are taken to come from, for routes that match on it")
	f.StringArrayVar(&headers, "header", nil, "a record header NAME=VALUE the messages are taken to carry, for routes that match on headers (repeatable)")
	f.BoolVar(&whole, "whole", false, "the whole input is one message, whatever it holds (as one Kafka record)")
	f.BoolVar(&delimited, "delimited", false, "the input is messages each preceded by its length as a varint (protobuf's delimited stream)")
	f.BoolVar(&hexInput, "hex", false, "the input is hexadecimal (whitespace ignored), decoded before anything else")
	f.StringVar(&now, "now", "", "judge the time window as of this time (RFC 3339, or Unix seconds) instead of the clock")
	return cmd
}

// parseNow reads --now: RFC 3339 or Unix seconds.
func parseNow(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f < 1e12 {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2017-01-13T07:09:49Z) nor Unix seconds", s)
}

// parseHeaders reads --header NAME=VALUE flags.
func parseHeaders(flags []string) ([]metric.Header, error) {
	var hs []metric.Header
	for _, h := range flags {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--header %q: write NAME=VALUE", h)
		}
		hs = append(hs, metric.Header{Key: k, Value: []byte(v)})
	}
	return hs, nil
}

// dryRun runs messages through a router built from the config, which
// delivers nothing: Router.DryRun shares Handle's code.
type dryRun struct {
	router     *router.Router
	asType     string
	topic      string
	headers    []metric.Header
	whole      bool   // the input is one message (a non-JSON decoder)
	delimited  bool   // the input is length-delimited messages
	fixed      bool   // --decoder: no routes, no outputs
	deadLetter string // the dead-letter topic, or ""
}

func newDryRun(cfg *config.Config, typ, decoderName, topic string, headers []metric.Header, opts []config.BuildOption) (*dryRun, error) {
	d := &dryRun{asType: typ, topic: topic, headers: headers, deadLetter: cfg.DeadLetter.Topic}
	if decoderName != "" {
		// The routes are skipped: one catch-all route to the decoder.
		name := strings.ToLower(decoderName)
		if _, err := cfg.NewDecoder(name, nil); err != nil {
			return nil, err
		}
		outs := make([]string, 0, len(cfg.Outputs))
		for o := range cfg.Outputs {
			outs = append(outs, o)
		}
		sort.Strings(outs)
		c := *cfg
		c.Routes = []config.Route{{Name: "--decoder " + name, Decoder: name, Outputs: outs[:1]}}
		cfg = &c
		d.whole = wholeInputKinds[cfg.DecoderKind(name)]
		d.fixed = true
	}
	built, err := config.Build(cfg, nil, opts...)
	if err != nil {
		return nil, err
	}
	d.router = built.Router
	if typ != "" {
		if o := d.router.DryRun(&metric.Message{Topic: topic, Headers: headers, Value: []byte("{}")}, typ); o[0].Route == "" {
			return nil, fmt.Errorf("no route matches type %q", typ)
		}
	}
	return d, nil
}

// split cuts the input into messages: all of it for a decoder of a
// non-JSON format; each JSON document of a JSON stream (a document may
// span lines); else one message per line.
func (d *dryRun) split(data []byte) ([][]byte, error) {
	if d.delimited {
		return splitDelimited(data)
	}
	if d.whole || isBinary(data) {
		return [][]byte{data}, nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	if msgs, ok := splitJSON(data); ok {
		return msgs, nil
	}
	var msgs [][]byte
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			msgs = append(msgs, line)
		}
	}
	return msgs, nil
}

// isBinary reports input that is not text, which no line or JSON document
// could split: invalid UTF-8, or control bytes other than tab and line
// ends. A protobuf message nearly always has some (its tags and lengths).
func isBinary(data []byte) bool {
	for _, c := range data {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return true
		}
	}
	return !utf8.Valid(data)
}

// splitDelimited cuts a stream of messages each preceded by its length as
// a varint.
func splitDelimited(data []byte) ([][]byte, error) {
	var msgs [][]byte
	for off := 0; off < len(data); {
		n, k := binary.Uvarint(data[off:])
		if k <= 0 {
			return nil, fmt.Errorf("--delimited: offset %d: not a varint length", off)
		}
		off += k
		if n > uint64(len(data)-off) {
			return nil, fmt.Errorf("--delimited: offset %d: a message of %d bytes, %d left", off-k, n, len(data)-off)
		}
		msgs = append(msgs, data[off:off+int(n)])
		off += int(n)
	}
	return msgs, nil
}

// fromHex decodes hexadecimal text, ignoring whitespace.
func fromHex(text []byte) ([]byte, error) {
	digits := make([]byte, 0, len(text))
	for _, c := range text {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			digits = append(digits, c)
		}
	}
	out := make([]byte, hex.DecodedLen(len(digits)))
	if _, err := hex.Decode(out, digits); err != nil {
		return nil, err
	}
	return out, nil
}

// splitJSON cuts a stream of JSON documents apart, or reports that data is
// not one.
func splitJSON(data []byte) ([][]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var msgs [][]byte
	for {
		start := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return msgs, len(msgs) > 0
		} else if err != nil {
			return nil, false
		}
		msg := bytes.TrimSpace(data[start:dec.InputOffset()])
		if !jsonscan.Valid(msg) {
			return nil, false // what encoding/json lets pass, the router would not
		}
		msgs = append(msgs, msg)
	}
}

func (d *dryRun) run(data []byte, stdout, stderr io.Writer) error {
	var (
		buf              []byte
		badMsgs, badSmps int
	)
	msgs, err := d.split(data)
	if err != nil {
		return usageError{fmt.Errorf("decode: %w", err)}
	}
	for i, value := range msgs {
		where := ""
		if len(msgs) > 1 {
			where = fmt.Sprintf(" (message %d)", i+1)
		}
		msg := &metric.Message{Topic: d.topic, Headers: d.headers, Value: value}
		rejected := false
		for _, o := range d.router.DryRun(msg, d.asType) {
			switch {
			case o.Skip != "":
				fmt.Fprintf(stderr, "skip %s%s (route %s, decoder %s)\n", o.Skip, where, o.Route, o.Decoder)
				continue
			case o.Reason != "":
				rejected = true
				dl := ""
				if d.deadLetter != "" {
					dl = "; to the dead-letter topic " + d.deadLetter
				}
				fmt.Fprintf(stderr, "reject %s%s: %s%s\n", o.Reason, where, o.Detail, dl)
				continue
			}
			to := ""
			if !d.fixed {
				to = " to " + strings.Join(o.Outputs, ", ")
			}
			if o.RuleDropped > 0 {
				to += fmt.Sprintf(" (%d left out by its rules)", o.RuleDropped)
			}
			fmt.Fprintf(stderr, "route %s%s: decoder %s, %d samples%s\n", o.Route, where, o.Decoder, len(o.Samples), to)
			buf, _ = carbon.AppendPlaintext(buf[:0], o.Samples)
			if _, err := stdout.Write(buf); err != nil {
				return err
			}
			for _, r := range o.Rejected {
				badSmps++
				fmt.Fprintf(stderr, "reject %s %q%s\n", r.Reason, r.Path, where)
			}
			for _, r := range o.Repaired {
				fmt.Fprintf(stderr, "tag repaired: %s %q%s\n", r.Reason, r.Path, where)
			}
		}
		if rejected {
			badMsgs++
		}
	}
	if badMsgs > 0 || badSmps > 0 {
		return fmt.Errorf("decode: %d of %d messages and %d samples rejected", badMsgs, len(msgs), badSmps)
	}
	return nil
}
