// Package kafkabroker runs Apache Kafka itself for tests: KRaft clusters of
// one or three nodes, each a JVM started from the broker's jars
// (`java -cp 'libs/*' kafka.Kafka server.properties`), on free loopback
// ports with temporary log directories. Tests can stop, SIGKILL and restart
// each node, create topics, produce with franz-go and read committed
// offsets.
//
// The jars come from Maven Central (pom.xml beside this file; fetch.sh
// copies them into $SHOVEL_KAFKA_LIBS, by default
// ~/.cache/shovel/kafka-<Version>/libs). Without Java or the jars a test
// skips, with a message that says how to get them; under CI=true it fails.
package kafkabroker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Version is the Apache Kafka release the tests run; pom.xml pins the same
// one, and deploy/compose.yaml runs its image.
const Version = "4.1.1"

// LibsDir is where the broker's jars are: $SHOVEL_KAFKA_LIBS, or
// kafka-<Version>/libs under shovel's user cache directory.
func LibsDir() string {
	if d := os.Getenv("SHOVEL_KAFKA_LIBS"); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "shovel", "kafka-"+Version, "libs")
}

// Available says why the real broker cannot run here ("" when it can).
func Available() string {
	if _, err := exec.LookPath("java"); err != nil {
		return "no java in PATH (Apache Kafka " + Version + " needs Java 17 or later)"
	}
	jar := filepath.Join(LibsDir(), "kafka_2.13-"+Version+".jar")
	if _, err := os.Stat(jar); err != nil {
		return fmt.Sprintf("no %s: run router/kafka/kafkabroker/fetch.sh (Maven) or set SHOVEL_KAFKA_LIBS", jar)
	}
	return ""
}

// Require skips the test when the real broker cannot run here, or under
// -short; under CI=true a missing broker fails the test instead.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("real Apache Kafka test: skipped under -short")
	}
	if why := Available(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("real Apache Kafka test cannot run under CI: %s", why)
		}
		t.Skipf("real Apache Kafka test skipped: %s", why)
	}
}

// Options shape a cluster. The zero value is one node, PLAINTEXT only.
type Options struct {
	// Nodes is the number of combined broker+controller nodes: 1 or 3.
	Nodes int
	// SCRAMUsers are SCRAM-SHA-512 credentials (name to password) created
	// when the storage is formatted; they enable a SASL_SSL listener.
	SCRAMUsers map[string]string
	// TLS adds an SSL listener that requires a client certificate signed
	// by the cluster's CA (mutual TLS), and is implied by SCRAMUsers.
	TLS bool
	// ACLs turns on KRaft's StandardAuthorizer. The PLAINTEXT listener
	// (tests, inter-broker, controllers) is a super user; every other
	// principal needs ACLs (see Cluster.AllowRead).
	ACLs bool
	// Props are extra server.properties, over the defaults.
	Props map[string]string
}

// Cluster is a running KRaft cluster.
type Cluster struct {
	Nodes []*Node
	// CA, Server and Client are the PEM files of the TLS listeners (when
	// Options.TLS or SCRAMUsers is set).
	Certs *Certs

	dir     string
	opts    Options
	client  *kgo.Client
	mu      sync.Mutex
	clients []*kgo.Client
}

// Node is one broker+controller process.
type Node struct {
	ID int
	// Addr is the PLAINTEXT listener, host:port.
	Addr string
	// SASLAddr is the SASL_SSL listener and TLSAddr the mutual-TLS one
	// ("" without them).
	SASLAddr, TLSAddr string

	c              *Cluster
	controllerPort int
	dir            string
	logPath        string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start formats and starts a cluster in a temporary directory, waits until
// every node is in its metadata, and stops it when the test ends. It calls
// Require first.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	Require(t)
	c, err := Launch(o, t.TempDir())
	if c != nil {
		t.Cleanup(func() {
			c.Close()
			if t.Failed() {
				for _, n := range c.Nodes {
					t.Logf("kafka node %d log (tail):\n%s", n.ID, tail(n.logPath, 60))
				}
			}
		})
	}
	if err != nil {
		t.Fatalf("kafkabroker: %v", err)
	}
	return c
}

// Launch is Start outside a test (the benchmark harness uses it): the
// cluster lives in dir until Close. On an error the nodes it started are
// stopped already.
func Launch(o Options, dir string) (*Cluster, error) {
	if why := Available(); why != "" {
		return nil, errors.New(why)
	}
	if o.Nodes == 0 {
		o.Nodes = 1
	}
	if o.Nodes != 1 && o.Nodes != 3 {
		return nil, fmt.Errorf("%d nodes: use 1 or 3", o.Nodes)
	}
	c := &Cluster{dir: dir, opts: o}
	secure := o.TLS || len(o.SCRAMUsers) > 0
	if secure {
		var err error
		if c.Certs, err = writeCerts(filepath.Join(c.dir, "certs")); err != nil {
			return nil, fmt.Errorf("certificates: %w", err)
		}
	}
	for i := 1; i <= o.Nodes; i++ {
		n := &Node{ID: i, c: c, dir: filepath.Join(c.dir, "node"+strconv.Itoa(i))}
		var addrs [4]string
		for j := range addrs {
			a, err := freeAddr()
			if err != nil {
				return nil, err
			}
			addrs[j] = a
		}
		n.Addr, n.controllerPort = addrs[0], port(addrs[1])
		if len(o.SCRAMUsers) > 0 {
			n.SASLAddr = addrs[2]
		}
		if secure {
			n.TLSAddr = addrs[3]
		}
		n.logPath = filepath.Join(c.dir, fmt.Sprintf("node%d.log", i))
		c.Nodes = append(c.Nodes, n)
	}
	fail := func(err error) (*Cluster, error) {
		c.Close()
		return c, err
	}
	clusterID := randomClusterID()
	for _, n := range c.Nodes {
		if err := n.format(clusterID); err != nil {
			return fail(err)
		}
	}
	for _, n := range c.Nodes {
		if err := n.start(); err != nil {
			return fail(err)
		}
	}
	var err error
	c.client, err = kgo.NewClient(kgo.SeedBrokers(c.addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(100000), kgo.ProducerBatchMaxBytes(4<<20), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return fail(fmt.Errorf("client: %w", err))
	}
	c.track(c.client)
	if err := c.WaitNodes(o.Nodes, 90*time.Second); err != nil {
		return fail(err)
	}
	return c, nil
}

// Close closes the cluster's clients and SIGKILLs every node.
func (c *Cluster) Close() {
	c.mu.Lock()
	for _, cl := range c.clients {
		cl.Close()
	}
	c.clients = nil
	c.mu.Unlock()
	for _, n := range c.Nodes {
		n.Kill()
	}
}

// Addr is the bootstrap list of the PLAINTEXT listeners.
func (c *Cluster) Addr() string { return strings.Join(c.addrs(), ",") }

// SASLAddr is the bootstrap list of the SASL_SSL listeners.
func (c *Cluster) SASLAddr() string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.SASLAddr)
	}
	return strings.Join(a, ",")
}

// TLSAddr is the bootstrap list of the mutual-TLS listeners.
func (c *Cluster) TLSAddr() string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.TLSAddr)
	}
	return strings.Join(a, ",")
}

func (c *Cluster) addrs() []string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr)
	}
	return a
}

func (c *Cluster) track(cl *kgo.Client) {
	c.mu.Lock()
	c.clients = append(c.clients, cl)
	c.mu.Unlock()
}

// Client is the cluster's franz-go client (PLAINTEXT, a super user when
// ACLs are on), for requests the helpers here do not cover.
func (c *Cluster) Client() *kgo.Client { return c.client }

// String names the cluster, for logs.
func (c *Cluster) String() string {
	return fmt.Sprintf("Apache Kafka %s, %d node(s) at %s", Version, len(c.Nodes), c.Addr())
}

func (c *Cluster) properties(n *Node) string {
	voters := make([]string, len(c.Nodes))
	for i, m := range c.Nodes {
		voters[i] = fmt.Sprintf("%d@127.0.0.1:%d", m.ID, m.controllerPort)
	}
	rf := strconv.Itoa(min(3, len(c.Nodes)))
	isr := strconv.Itoa(min(2, len(c.Nodes)))
	listeners := []string{"PLAINTEXT://" + n.Addr, fmt.Sprintf("CONTROLLER://127.0.0.1:%d", n.controllerPort)}
	advertised := []string{"PLAINTEXT://" + n.Addr}
	protocols := []string{"PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"}
	p := map[string]string{
		"process.roles":                                    "broker,controller",
		"node.id":                                          strconv.Itoa(n.ID),
		"controller.quorum.voters":                         strings.Join(voters, ","),
		"controller.listener.names":                        "CONTROLLER",
		"inter.broker.listener.name":                       "PLAINTEXT",
		"log.dirs":                                         filepath.Join(n.dir, "data"),
		"num.partitions":                                   "1",
		"default.replication.factor":                       rf,
		"offsets.topic.replication.factor":                 rf,
		"offsets.topic.num.partitions":                     "5",
		"transaction.state.log.replication.factor":         rf,
		"transaction.state.log.min.isr":                    isr,
		"transaction.state.log.num.partitions":             "5",
		"share.coordinator.state.topic.replication.factor": rf,
		"share.coordinator.state.topic.min.isr":            isr,
		"group.initial.rebalance.delay.ms":                 "0",
		"auto.create.topics.enable":                        "false",
		// A dead node is noticed in seconds, not the default 9 s.
		"broker.session.timeout.ms":             "3000",
		"broker.heartbeat.interval.ms":          "500",
		"controller.quorum.election.timeout.ms": "1000",
		"controller.quorum.fetch.timeout.ms":    "2000",
		// Let a consumer-protocol (KIP-848) group notice a dead member as
		// quickly as the classic tests' session.timeout.ms of 6 s.
		"group.consumer.session.timeout.ms":        "6000",
		"group.consumer.min.session.timeout.ms":    "3000",
		"group.consumer.heartbeat.interval.ms":     "500",
		"group.consumer.min.heartbeat.interval.ms": "500",
		"log.segment.bytes":                        strconv.Itoa(16 << 20),
		"num.network.threads":                      "2",
		"num.io.threads":                           "2",
		"background.threads":                       "2",
	}
	if n.SASLAddr != "" {
		listeners = append(listeners, "SASL_SSL://"+n.SASLAddr)
		advertised = append(advertised, "SASL_SSL://"+n.SASLAddr)
		protocols = append(protocols, "SASL_SSL:SASL_SSL")
		p["sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
		p["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
	}
	if n.TLSAddr != "" {
		listeners = append(listeners, "SSL://"+n.TLSAddr)
		advertised = append(advertised, "SSL://"+n.TLSAddr)
		protocols = append(protocols, "SSL:SSL")
		p["listener.name.ssl.ssl.client.auth"] = "required"
		// The mutual-TLS principal is the client certificate's CN.
		p["ssl.principal.mapping.rules"] = "RULE:^CN=([^,]+).*$/$1/,DEFAULT"
	}
	if c.Certs != nil {
		p["ssl.keystore.type"] = "PEM"
		p["ssl.keystore.location"] = c.Certs.ServerKeystore
		p["ssl.truststore.type"] = "PEM"
		p["ssl.truststore.location"] = c.Certs.CA
		p["ssl.endpoint.identification.algorithm"] = ""
	}
	if c.opts.ACLs {
		p["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
		p["super.users"] = "User:ANONYMOUS"
		p["allow.everyone.if.no.acl.found"] = "false"
	}
	p["listeners"] = strings.Join(listeners, ",")
	p["advertised.listeners"] = strings.Join(advertised, ",")
	p["listener.security.protocol.map"] = strings.Join(protocols, ",")
	for k, v := range c.opts.Props {
		p[k] = v
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, p[k])
	}
	return b.String()
}

const log4j2 = `rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka.server.KafkaRaftServer
logger.kafka.level=INFO
`

// jvm are the JVM options: a small heap, and start-up over peak speed.
var jvm = []string{"-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
	"-Djava.awt.headless=true"}

func (n *Node) java(args ...string) *exec.Cmd {
	full := append(append([]string{}, jvm...), "-cp", filepath.Join(LibsDir(), "*"),
		"-Dlog4j2.configurationFile="+filepath.Join(n.dir, "log4j2.properties"))
	cmd := exec.Command("java", append(full, args...)...)
	// Killed with the test binary, should that die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (n *Node) format(clusterID string) error {
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	props := filepath.Join(n.dir, "server.properties")
	if err := os.WriteFile(props, []byte(n.c.properties(n)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.dir, "log4j2.properties"), []byte(log4j2), 0o644); err != nil {
		return err
	}
	args := []string{"kafka.tools.StorageTool", "format", "--ignore-formatted", "-t", clusterID, "-c", props}
	users := make([]string, 0, len(n.c.opts.SCRAMUsers))
	for u := range n.c.opts.SCRAMUsers {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		args = append(args, "--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", u, n.c.opts.SCRAMUsers[u]))
	}
	out, err := n.java(args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("format node %d: %v: %s", n.ID, err, out)
	}
	return nil
}

func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("node %d is already running", n.ID)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := n.java("kafka.Kafka", filepath.Join(n.dir, "server.properties"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start node %d: %w", n.ID, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	n.cmd, n.done = cmd, done
	return nil
}

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// stopWith signals the process and waits up to wait for it to exit, then
// kills it.
func (n *Node) stopWith(sig syscall.Signal, wait time.Duration) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd, n.done = nil, nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Stop shuts the node down cleanly (SIGTERM: it hands over leadership and
// flushes its logs), killing it after 60 s.
func (n *Node) Stop() { n.stopWith(syscall.SIGTERM, 60*time.Second) }

// Kill SIGKILLs the node: no clean shutdown, its data stays on disk.
func (n *Node) Kill() { n.stopWith(syscall.SIGKILL, 30*time.Second) }

// Start starts a stopped node again on the same ports and data and waits
// until it answers and the cluster lists it again.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	if err := n.start(); err != nil {
		t.Fatalf("kafkabroker: %v", err)
	}
	if err := n.c.waitNode(n, 90*time.Second); err != nil {
		t.Fatalf("kafkabroker: %v", err)
	}
}

// Restart is Stop then Start.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.Stop()
	n.Start(t)
}

// WaitNodes waits until the cluster's metadata lists want brokers.
func (c *Cluster) WaitNodes(want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ids, err := c.brokerIDs()
		if err == nil && len(ids) >= want {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("metadata lists brokers %v", ids)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%d node(s) not up within %v: %v", want, timeout, last)
}

func (c *Cluster) waitNode(n *Node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if !n.Running() {
			return fmt.Errorf("node %d exited; log:\n%s", n.ID, tail(n.logPath, 40))
		}
		conn, err := net.DialTimeout("tcp", n.Addr, time.Second)
		if err == nil {
			conn.Close()
			ids, err := c.brokerIDs()
			if err == nil {
				for _, id := range ids {
					if id == int32(n.ID) {
						return nil
					}
				}
				err = fmt.Errorf("metadata lists brokers %v", ids)
			}
			last = err
		} else {
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("node %d not back within %v: %v", n.ID, timeout, last)
}

func (c *Cluster) brokerIDs() ([]int32, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, c.client)
	if err != nil {
		return nil, err
	}
	var ids []int32
	for _, b := range resp.Brokers {
		ids = append(ids, b.NodeID)
	}
	return ids, nil
}

// Node returns the node with the given broker id.
func (c *Cluster) Node(id int32) *Node {
	for _, n := range c.Nodes {
		if int32(n.ID) == id {
			return n
		}
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// randomClusterID is a Kafka cluster id: 16 random bytes, base64url.
func randomClusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tail returns the last lines of a file.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	parts := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return string(bytes.Join(parts, []byte("\n")))
}

// LogTail returns the last lines of the node's log.
func (n *Node) LogTail(lines int) string { return tail(n.logPath, lines) }

// Log returns the node's log so far (the broker logs warnings and errors).
func (n *Node) Log() string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

var errNoLeader = errors.New("no leader")
