package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/outputs/carbon"
	"github.com/shovel-metrics/shovel/router/jsonscan"
	"github.com/shovel-metrics/shovel/router/metric"
)

func init() { subcommands = append(subcommands, newDecodeCmd) }

// maxDecodeInput bounds what `shovel decode` reads: more than any decoder
// accepts in one message, with room for many messages.
const maxDecodeInput = 256 << 20

// wholeInputKinds are the decoders whose messages are not JSON: the whole
// input is one message.
var wholeInputKinds = map[string]bool{"carbon-plaintext": true, "carbon-pickle": true}

func newDecodeCmd() *cobra.Command {
	var cfgPath, typ, decoderName, topic string
	cmd := &cobra.Command{
		Use:   "decode [FILE|-]",
		Short: "Decode messages from a file or stdin and print the samples as Carbon plaintext",
		Long: `decode runs decoders without Kafka or Carbon, to try a config or a message.

It reads FILE (or stdin): one JSON document, or one message per line. With
--decoder, or --type, every message goes to that decoder; otherwise each is
routed by its "type" (and --topic) through the config's routes, as the router
does. Without --config the built-in default config is used. A decoder of
Carbon plaintext or pickle takes the whole input as one message.

Samples are printed on stdout as Carbon plaintext lines ("path value ts"),
rejections on stderr with their reason, and so are messages a decoder skips
as not its own (such as VOLTHA device events), which are not rejections. The
exit status is 1 if anything was rejected.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if typ != "" && decoderName != "" {
				return usageError{errors.New("decode: --type and --decoder exclude each other")}
			}
			cfg, err := config.Check(cfgPath, config.Overrides{})
			if err != nil {
				return usageError{err}
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
			d, err := newMessageDecoder(cfg, typ, decoderName, topic)
			if err != nil {
				return usageError{fmt.Errorf("decode: %w", err)}
			}
			data, err := io.ReadAll(io.LimitReader(in, maxDecodeInput+1))
			if err != nil {
				return fmt.Errorf("decode: read %s: %w", name, err)
			}
			if len(data) > maxDecodeInput {
				return usageError{fmt.Errorf("decode: %s is larger than %d bytes", name, maxDecodeInput)}
			}
			return d.run(data, topic, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config whose decoders and routes to use (default: the built-in one)")
	f.StringVar(&typ, "type", "", `decode every message as this "type" would be routed`)
	f.StringVar(&decoderName, "decoder", "", "decode every message with this decoder (an entry of decoders: or a registered decoder)")
	f.StringVar(&topic, "topic", "", "the Kafka topic the messages are taken to come from, for routes that match on it")
	return cmd
}

// decodeRoute is a route as `shovel decode` matches it: no headers are
// known, so a route that needs some never matches.
type decodeRoute struct {
	typ, topic string
	topicRE    *regexp.Regexp
	headers    bool
	decoder    string
}

type messageDecoder struct {
	cfg      *config.Config
	fixed    string // the decoder every message goes to, or ""
	routes   []decodeRoute
	decoders map[string]metric.Decoder
}

func newMessageDecoder(cfg *config.Config, typ, decoderName, topic string) (*messageDecoder, error) {
	d := &messageDecoder{cfg: cfg, decoders: map[string]metric.Decoder{}, fixed: strings.ToLower(decoderName)}
	for _, r := range cfg.Routes {
		dr := decodeRoute{typ: r.Match.Type, topic: r.Match.Topic, headers: len(r.Match.Headers) > 0, decoder: r.Decoder}
		if strings.HasPrefix(dr.topic, "^") {
			re, err := regexp.Compile(dr.topic)
			if err != nil {
				return nil, err
			}
			dr.topicRE = re
		}
		d.routes = append(d.routes, dr)
	}
	if typ != "" {
		r := d.match(typ, true, topic)
		if r == nil {
			return nil, fmt.Errorf("no route matches type %q", typ)
		}
		d.fixed = r.decoder
	}
	if d.fixed != "" {
		if _, err := d.decoder(d.fixed); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// match returns the first route for a message of type typ (hasType false:
// the message has none) from topic, as the router matches routes.
func (d *messageDecoder) match(typ string, hasType bool, topic string) *decodeRoute {
	for i := range d.routes {
		r := &d.routes[i]
		switch {
		case r.headers:
			continue
		case r.topicRE != nil && !r.topicRE.MatchString(topic):
			continue
		case r.topicRE == nil && r.topic != "" && r.topic != topic:
			continue
		case r.typ != "" && (!hasType || r.typ != typ):
			continue
		}
		return r
	}
	return nil
}

func (d *messageDecoder) decoder(name string) (metric.Decoder, error) {
	if dec, ok := d.decoders[name]; ok {
		return dec, nil
	}
	dec, err := d.cfg.NewDecoder(name, nil)
	if err != nil {
		return nil, err
	}
	d.decoders[name] = dec
	return dec, nil
}

// split cuts the input into messages: all of it for a decoder of a
// non-JSON format, or when it is one JSON document; else one per line.
func (d *messageDecoder) split(data []byte) [][]byte {
	if d.fixed != "" && wholeInputKinds[d.cfg.DecoderKind(d.fixed)] {
		return [][]byte{data}
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil
	}
	if jsonscan.Valid(trimmed) {
		return [][]byte{trimmed}
	}
	var msgs [][]byte
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			msgs = append(msgs, line)
		}
	}
	return msgs
}

func (d *messageDecoder) run(data []byte, topic string, stdout, stderr io.Writer) error {
	var (
		out              metric.Result
		buf              []byte
		badMsgs, badSmps int
	)
	msgs := d.split(data)
	for i, value := range msgs {
		where := ""
		if len(msgs) > 1 {
			where = fmt.Sprintf(" (message %d)", i+1)
		}
		name := d.fixed
		if name == "" {
			typ, err := jsonscan.TopLevelString(value, "type")
			r := d.match(typ, err == nil, topic)
			if r == nil {
				badMsgs++
				fmt.Fprintf(stderr, "reject %s%s\n", metric.ReasonNoRoute, where)
				continue
			}
			name = r.decoder
		}
		dec, err := d.decoder(name)
		if err != nil {
			return err
		}
		out.Reset()
		msg := &metric.Message{Topic: topic, Value: value}
		// The router's output budget: a message that would decode into
		// gigabytes is rejected here as it would be there.
		out.Budget = d.cfg.Limits.OutputLimits().Budget(msg.Size())
		if err := safeDecode(dec, msg, &out); err != nil {
			if reason, ok := metric.SkipReason(err); ok {
				// Not for this decoder, and no fault: the router counts
				// it as skipped and goes on, and so does decode.
				fmt.Fprintf(stderr, "skip %s%s\n", reason, where)
				continue
			}
			badMsgs++
			var re *metric.RejectError
			if errors.As(err, &re) {
				fmt.Fprintf(stderr, "reject %s%s: %s\n", re.Reason, where, re.Detail)
			} else {
				fmt.Fprintf(stderr, "reject %s%s: %v\n", metric.ReasonOf(err), where, err)
			}
			continue
		}
		// The router's last line of defence, so that what is printed is
		// what would reach Carbon.
		kept := out.Samples[:0]
		for _, s := range out.Samples {
			switch {
			case !metric.ValidPath(s.Path):
				out.Reject(s.Path, metric.ReasonBadPath)
			case math.IsInf(s.Value, 0) || math.IsNaN(s.Value):
				out.Reject(s.Path, metric.ReasonNotFinite)
			default:
				kept = append(kept, s)
			}
		}
		buf, _ = carbon.AppendPlaintext(buf[:0], kept)
		if _, err := stdout.Write(buf); err != nil {
			return err
		}
		for _, r := range out.Rejected {
			badSmps++
			fmt.Fprintf(stderr, "reject %s %q%s\n", r.Reason, r.Path, where)
		}
	}
	if badMsgs > 0 || badSmps > 0 {
		return fmt.Errorf("decode: %d of %d messages and %d samples rejected", badMsgs, len(msgs), badSmps)
	}
	return nil
}

// safeDecode turns a decoder panic into an error, as the router does.
func safeDecode(d metric.Decoder, msg *metric.Message, out *metric.Result) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	if err := d.Decode(msg, out); err != nil {
		return err
	}
	if err := out.Over(); err != nil {
		return err
	}
	if c := out.Cost(); out.Budget > 0 && c > out.Budget {
		return metric.Rejectf(metric.ReasonOverBudget, "decoded into %d bytes, more than the output budget of %d bytes for this message", c, out.Budget)
	}
	return nil
}
