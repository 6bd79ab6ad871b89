// Package configs holds shovel's example configuration. The commented
// shovel.yaml is also the built-in default that `shovel route` runs when no
// --config is given, so the example can never drift from what runs.
package configs

import _ "embed"

// Default is the content of shovel.yaml.
//
//go:embed shovel.yaml
var Default []byte
