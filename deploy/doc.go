// Package deploy holds no code: it is the Docker Compose deployment of
// shovel (compose.yaml, shovel.yaml, Grafana provisioning and dashboard)
// and the tests that check those files agree with each other and with
// shovel, since no Docker engine runs where the tests do.
package deploy
