package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	// The plugin bundles: importing them registers every decoder and output.
	"github.com/shovel-metrics/shovel/decoders"
	"github.com/shovel-metrics/shovel/outputs"
)

// Set at build time: -ldflags "-X main.version=v1.2.3 -X main.commit=abc123".
var (
	version = "dev"
	commit  = ""
)

// Exit codes: 2 for anything the user must fix before shovel can run (a bad
// flag or config), 1 for a failure while running.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks errors that exit with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// loggedError is an error the command has written to its log already (a
// JSON log's last line); run exits with its status without printing it.
type loggedError struct{ err error }

func (e loggedError) Error() string { return e.err.Error() }
func (e loggedError) Unwrap() error { return e.err }

// run executes the command line args and returns the exit code. Tests call
// it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	// One line per problem, each naming it: a config with three mistakes
	// shows all three. An error already in the log is not printed again.
	var le loggedError
	if !errors.As(err, &le) {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "shovel: %s\n", line)
		}
	}
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.Contains(err.Error(), "flag") {
		return exitUsage
	}
	return exitRuntime
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "shovel",
		Short: "shovel moves KPI samples from Kafka into Graphite/Carbon",
		Long: `shovel is a plugin-based metrics router. It consumes KPI messages from Kafka,
matches each message to a route by its "type", decodes it into (path, timestamp,
value) samples, and writes them to Carbon's pickle or plaintext receivers.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	for _, newCmd := range subcommands {
		root.AddCommand(newCmd())
	}
	return root
}

// subcommands builds shovel's commands. A command in a file of its own adds
// itself from that file's init, so commands don't all edit this one.
var subcommands = []func() *cobra.Command{newRouteCmd, newVersionCmd, newDecodersCmd}

// commitID is the commit shovel was built from: -ldflags' main.commit, or
// the VCS revision Go recorded, or "unknown".
func commitID() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print shovel's version and commit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "shovel %s (commit %s)\n", version, commitID())
			return nil
		},
	}
}

func newDecodersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "decoders",
		Short: "List the registered decoders and output kinds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, "decoders:")
			for _, n := range decoders.Names() {
				fmt.Fprintf(w, "  %-18s %s\n", n, decoders.Description(n))
			}
			fmt.Fprintln(w, "output kinds:")
			for _, k := range outputs.Kinds() {
				fmt.Fprintf(w, "  %-18s %s\n", k, outputs.Description(k))
			}
			return nil
		},
	}
}
