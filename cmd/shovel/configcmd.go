package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/configs"
	"github.com/shovel-metrics/shovel/router/consul"
)

func init() { subcommands = append(subcommands, newConfigCmd) }

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the commented sample config, or check a config file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "sample",
		Short: "Print the complete commented config (the built-in default)",
		Long: `sample prints configs/shovel.yaml, which is also what shovel runs when
given no --config. Start a config of your own from it:

  shovel config sample > shovel.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(configs.Default)
			return err
		},
	})

	var path string
	var connect bool
	check := &cobra.Command{
		Use:   "check [FILE | --config FILE]",
		Short: "Check a config file: print every problem with its key, or ok",
		Long: `check loads the file as shovel route would (SHOVEL_* environment variables
apply; command-line overrides do not), checks its meaning and builds every
decoder and output from it, without connecting anywhere. It prints one line
per problem, each naming its key, and exits 2; or prints "ok" and exits 0.
Without a file it checks the built-in default.

With --connect it then tries what the file names, consuming and writing
nothing: Consul for an "@name" of kafka.brokers, the brokers (a metadata
request, with kafka.settings' security settings), every topic of
kafka.topics and the dead-letter topic, and every output's destination
(each for at most 10 s). It prints a line per check and exits 1 if any
failed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if path != "" && path != args[0] {
					return usageError{fmt.Errorf("config check: two files given (%s and --config %s): check one at a time", args[0], path)}
				}
				path = args[0]
			}
			// Check reports every problem of the file at once: its shape,
			// its meaning and every plugin's own keys, without any I/O.
			cfg, err := loadUntil(cmd.Context(), func() (*config.Config, error) { return config.Check(path, config.Overrides{}) })
			if err != nil {
				if cmd.Context().Err() != nil {
					return err // a signal, not a bad config
				}
				return usageError{err}
			}
			if _, err := config.Build(cfg, nil); err != nil {
				return usageError{err}
			}
			// Read as route would on its first Consul lookup, so that a
			// token file Consul would refuse is found now.
			if cfg.Consul.TokenFile != "" {
				if _, err := consul.ReadTokenFile(cfg.Consul.TokenFile); err != nil {
					return usageError{err}
				}
			}
			for _, v := range cfg.EnvUnused() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s names no key of this config; it is ignored (the rule: %s for outputs.graphite.address)\n", v, config.EnvName("outputs.graphite.address"))
			}
			warnings, err := config.SecretWarnings(path)
			if err != nil {
				return usageError{err}
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if connect {
				log := cliLogger("error", cmd.ErrOrStderr())
				if err := checkConnect(cmd.Context(), cfg, cmd.OutOrStdout(), log); err != nil {
					return err
				}
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return err
		},
	}
	check.Flags().BoolVar(&connect, "connect", false, "then try what the file names: the brokers and topics, Consul, every output (consumes and writes nothing; exit 1 if any fails)")
	check.Flags().StringVar(&path, "config", "", "YAML config file (default: the built-in configs/shovel.yaml)")
	cmd.AddCommand(check)
	return cmd
}
