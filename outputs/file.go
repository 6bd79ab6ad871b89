package outputs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/shovel-metrics/shovel/outputs/carbon"
	"github.com/shovel-metrics/shovel/router/metric"
)

func init() {
	Register("file", "Carbon plaintext lines (\"path value timestamp\") to a file, or to stdout with path \"-\"; for debugging and archiving", newFile)
}

// FileConfig configures a file output.
type FileConfig struct {
	// Path is the file to write, or "-" or "stdout" for standard output. Required.
	Path string `mapstructure:"path"`
	// Append adds to an existing file; false truncates it when shovel starts.
	Append bool `mapstructure:"append"`
}

// NewFileConfig returns the defaults. Path has none.
func NewFileConfig() FileConfig { return FileConfig{Append: true} }

// Validate checks the config without any I/O; errors name the offending key.
func (c *FileConfig) Validate() error {
	if c.Path == "" {
		return errors.New(`path: must name a file, or "-" for stdout`)
	}
	return nil
}

func (c *FileConfig) stdout() bool { return c.Path == "-" || c.Path == "stdout" }

// fileOutput writes Carbon plaintext lines to a file or a stream. Each
// batch is one write, so lines from one batch are never interleaved with
// another writer's on a pipe or terminal.
type fileOutput struct {
	cfg    FileConfig
	open   func(flag int) (io.Writer, error) // nil for a stream given by the caller
	w      io.Writer
	closer io.Closer // nil when shovel does not own w
	opened bool      // truncation, when asked for, happens on the first open only
	log    *slog.Logger
	buf    []byte
}

var _ metric.Output = (*fileOutput)(nil)

func newFile(decode metric.DecodeConfig, env metric.Env) (metric.Output, error) {
	const kind = "file"
	cfg := NewFileConfig()
	if err := decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &fileOutput{cfg: cfg, log: log}
	if cfg.stdout() {
		o.w = os.Stdout
		return o, nil
	}
	o.open = func(flag int) (io.Writer, error) {
		return os.OpenFile(cfg.Path, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	}
	return o, nil
}

// NewStreamOutput returns an output that writes Carbon plaintext lines to
// w, which it never closes: `shovel demo` uses it to show samples on the
// command's standard output. Write is called by one goroutine at a time.
func NewStreamOutput(w io.Writer, log *slog.Logger) metric.Output {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &fileOutput{cfg: FileConfig{Path: "-"}, w: w, log: log}
}

// Connect opens the file, creating it if needed. A failure is not fatal:
// Write tries again.
func (o *fileOutput) Connect(context.Context) error {
	return o.ensureOpen()
}

func (o *fileOutput) ensureOpen() error {
	if o.w != nil {
		return nil
	}
	// O_APPEND always: lines from another writer of the same file land
	// between batches, never inside one. Truncation, when asked for,
	// happens on the first open only, not when reopening after a failure.
	flag := os.O_APPEND
	if !o.cfg.Append && !o.opened {
		flag |= os.O_TRUNC
	}
	w, err := o.open(flag)
	if err != nil {
		// Wrapping ErrNotConnected lets the router try the fallback and
		// retry, as it does while Carbon is away: a full disk or a missing
		// directory may be fixed while shovel runs.
		return fmt.Errorf("file: open %s: %w: %w", o.cfg.Path, metric.ErrNotConnected, err)
	}
	o.w, o.opened = w, true
	if c, ok := w.(io.Closer); ok {
		o.closer = c
	}
	return nil
}

// Write appends one line per sample, the whole batch in one write. After a
// failed write the file is closed and opened again on the next one.
func (o *fileOutput) Write(_ context.Context, samples []metric.Sample) error {
	var skipped int
	o.buf, skipped = carbon.AppendPlaintext(o.buf[:0], samples)
	if skipped > 0 {
		o.log.Warn("dropped samples whose path would break a plaintext line", "count", skipped)
	}
	if len(o.buf) == 0 {
		return nil
	}
	if err := o.ensureOpen(); err != nil {
		return err
	}
	_, err := o.w.Write(o.buf)
	if cap(o.buf) > plaintextKeptBuffer {
		o.buf = nil
	}
	if err != nil {
		if o.closer != nil {
			_ = o.closer.Close()
			o.w, o.closer = nil, nil
		}
		return fmt.Errorf("file: write %s: %w", o.cfg.Path, err)
	}
	return nil
}

// Close closes the file; standard output and a caller's stream stay open.
func (o *fileOutput) Close() error {
	if o.closer == nil {
		return nil
	}
	err := o.closer.Close()
	o.w, o.closer = nil, nil
	if err != nil {
		return fmt.Errorf("file: close %s: %w", o.cfg.Path, err)
	}
	return nil
}
