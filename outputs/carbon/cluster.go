package carbon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/shovel-metrics/shovel/router/metric"
)

// Distribution says how a Cluster spreads samples over its destinations.
type Distribution string

// The distributions. The hashing ones are compatible with carbon-relay
// (carbon_ch) and carbon-c-relay (fnv1a_ch, jump_fnv1a_ch), see hashing.go.
const (
	// DistributeAll sends every sample to every destination.
	DistributeAll Distribution = "all"
	// DistributeAny sends each batch to one healthy destination, taking
	// them in turn.
	DistributeAny Distribution = "any"
	// DistributeFailover sends each batch to the first healthy
	// destination in the configured order.
	DistributeFailover Distribution = "failover"
	// DistributeCarbonCH, DistributeFNV1aCH and DistributeJumpFNV1aCH
	// send each sample to the replication_factor nodes a consistent hash
	// of its path picks.
	DistributeCarbonCH    Distribution = "carbon_ch"
	DistributeFNV1aCH     Distribution = "fnv1a_ch"
	DistributeJumpFNV1aCH Distribution = "jump_fnv1a_ch"
)

var distributions = []Distribution{DistributeAll, DistributeAny, DistributeFailover, DistributeCarbonCH, DistributeFNV1aCH, DistributeJumpFNV1aCH}

func (d Distribution) hashed() bool {
	return d == DistributeCarbonCH || d == DistributeFNV1aCH || d == DistributeJumpFNV1aCH
}

// OnDown says what a Cluster does with samples for a destination it
// cannot reach (distributions all and the hashing ones).
type OnDown string

const (
	// OnDownWait fails the Write (wrapping metric.ErrNotConnected), so
	// that the router keeps the batch and retries it: nothing is lost and
	// nothing lands on a node that does not own it. The default.
	OnDownWait OnDown = "wait"
	// OnDownNext delivers without the down destination: a hashed sample
	// goes to the next node on the ring that is up (as carbon-c-relay
	// does when a node fails), and all is satisfied by any one destination.
	OnDownNext OnDown = "next"
)

// Destination is one entry of destinations: "host:port", carbon's
// "host:port:instance", or a map with address and instance.
type Destination struct {
	Address string `mapstructure:"address"`
	// Instance names the node on the hash ring as in carbon's
	// DESTINATIONS ("127.0.0.1:2004:a" is host 127.0.0.1, instance a).
	Instance string `mapstructure:"instance"`
}

// UnmarshalMapstructure lets a destination be written as a string or as
// a map; the config loader (mapstructure) calls it.
func (d *Destination) UnmarshalMapstructure(v any) error {
	switch v := v.(type) {
	case string:
		*d = parseDestination(v)
		return nil
	case map[string]any:
		for k, val := range v {
			var s string
			switch val := val.(type) {
			case string:
				s = val
			case int, int64, uint64, int32, uint32:
				s = fmt.Sprint(val)
			default:
				return fmt.Errorf("%s: must be a string, got %T", k, val)
			}
			switch k {
			case "address":
				d.Address = s
			case "instance":
				d.Instance = s
			default:
				return fmt.Errorf("%s: unknown key (known keys here: address, instance)", k)
			}
		}
		return nil
	}
	return fmt.Errorf("must be host:port, host:port:instance or {address, instance}, got %T", v)
}

// parseDestination reads carbon's "host:port:instance" as well as "host:port".
func parseDestination(s string) Destination {
	if _, _, err := net.SplitHostPort(s); err != nil {
		if i := strings.LastIndexByte(s, ':'); i > 0 {
			if _, _, err := net.SplitHostPort(s[:i]); err == nil {
				return Destination{Address: s[:i], Instance: s[i+1:]}
			}
		}
	}
	return Destination{Address: s}
}

// ClusterConfig says where a Cluster sends: one Address, or Destinations
// with a Distribution. Its errors name the carbon outputs' config keys.
type ClusterConfig struct {
	// Conn is the template for every destination's connection; its
	// Address is the single-address form.
	Conn         ConnConfig
	Destinations []Destination
	Distribution Distribution
	// ReplicationFactor is how many nodes a hashed sample goes to
	// (0 means 1).
	ReplicationFactor int
	// DiverseReplicas (carbon_ch only; nil means true, carbon's default)
	// places the replicas of a sample on different hosts, skipping further
	// instances of a host already chosen, as carbon's DIVERSE_REPLICAS.
	DiverseReplicas *bool
	// OnDown is "" (wait), wait or next.
	OnDown OnDown
}

// Validate checks the config without any I/O.
func (c *ClusterConfig) Validate() error {
	if err := c.validateTarget(); err != nil {
		return err
	}
	cc := c.Conn
	if len(c.Destinations) > 0 {
		cc.Address = c.Destinations[0].Address
	}
	return cc.Validate()
}

func (c *ClusterConfig) validateTarget() error {
	if len(c.Destinations) == 0 {
		switch {
		case c.Distribution != "":
			return errors.New("distribution: needs destinations; a single address has nothing to distribute over")
		case c.ReplicationFactor != 0:
			return errors.New("replication_factor: needs destinations and a hashing distribution")
		case c.DiverseReplicas != nil:
			return errors.New("diverse_replicas: needs destinations and distribution carbon_ch")
		case c.OnDown != "":
			return errors.New("on_down: needs destinations")
		}
		return nil
	}
	if c.Conn.Address != "" {
		return errors.New("address: set either address or destinations, not both")
	}
	d := c.Distribution
	switch {
	case d == "" && len(c.Destinations) > 1:
		return fmt.Errorf("distribution: missing; with several destinations set one of %s", distributionNames())
	case d != "" && !validDistribution(d):
		return fmt.Errorf("distribution: %q is not one of %s", d, distributionNames())
	case c.ReplicationFactor != 0 && !d.hashed():
		return fmt.Errorf("replication_factor: only applies to carbon_ch, fnv1a_ch and jump_fnv1a_ch, not %q", d)
	case c.ReplicationFactor < 0 || c.ReplicationFactor > len(c.Destinations):
		return fmt.Errorf("replication_factor: %d is not from 1 to the %d destinations", c.ReplicationFactor, len(c.Destinations))
	case c.DiverseReplicas != nil && d != DistributeCarbonCH:
		return fmt.Errorf("diverse_replicas: only applies to carbon_ch, not %q", d)
	case c.OnDown != "" && c.OnDown != OnDownWait && c.OnDown != OnDownNext:
		return fmt.Errorf("on_down: %q is not wait or next", c.OnDown)
	case c.OnDown != "" && (d == DistributeAny || d == DistributeFailover):
		return fmt.Errorf("on_down: has no effect with distribution %s, which always skips destinations that are down", d)
	}
	seen := map[string]int{}
	for i, dst := range c.Destinations {
		key := fmt.Sprintf("destinations[%d]", i)
		if err := ValidateAddress(dst.Address); err != nil {
			return fmt.Errorf("%s.%w", key, err)
		}
		if dst.Instance != "" {
			if !d.hashed() {
				return fmt.Errorf("%s.instance: only used by carbon_ch, fnv1a_ch and jump_fnv1a_ch", key)
			}
			if err := validateInstance(dst.Instance); err != nil {
				return fmt.Errorf("%s.instance: %w", key, err)
			}
		}
		if d.hashed() && strings.HasPrefix(dst.Address, "@") {
			return fmt.Errorf("%s.address: %q: a node of a hash ring must be one host:port, not a service", key, dst.Address)
		}
		if d == DistributeCarbonCH && strings.ContainsAny(ringNode(dst).Host, `'"\`) {
			return fmt.Errorf("%s.address: %q: a quote or backslash in the host would not hash as carbon's does", key, dst.Address)
		}
		// The identity of a node on the ring, as each relay sees it.
		id := dst.Address
		node := ringNode(dst)
		switch d {
		case DistributeCarbonCH:
			id = node.Host + " instance " + dst.Instance
		case DistributeFNV1aCH:
			if dst.Instance != "" {
				id = "instance " + dst.Instance
			}
		case DistributeJumpFNV1aCH:
			if dst.Instance != "" {
				id = "instance " + dst.Instance
			}
		}
		if j, dup := seen[id]; dup {
			if d == DistributeCarbonCH && dst.Instance == "" {
				return fmt.Errorf("%s: same host as destinations[%d]; carbon_ch ignores ports, so give each an instance", key, j)
			}
			return fmt.Errorf("%s: same node as destinations[%d]", key, j)
		}
		seen[id] = i
	}
	return nil
}

func validDistribution(d Distribution) bool {
	for _, v := range distributions {
		if d == v {
			return true
		}
	}
	return false
}

func distributionNames() string {
	names := make([]string, len(distributions))
	for i, d := range distributions {
		names[i] = string(d)
	}
	return strings.Join(names, ", ")
}

// validateInstance keeps instance names to characters that print the same
// in Python's repr and in carbon-c-relay's config.
func validateInstance(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%q: use letters, digits, '_', '-' and '.' only", s)
		}
	}
	return nil
}

// ringNode is the destination as the hash rings see it. Validate has
// checked the address.
func ringNode(d Destination) RingNode {
	host, port, _ := net.SplitHostPort(d.Address)
	p, _ := strconv.Atoi(port)
	return RingNode{Host: host, Port: p, Instance: d.Instance}
}

// Encoder appends samples to dst in a wire format and returns the
// extended buffer and how many samples it had to leave out.
type Encoder func(dst []byte, samples []metric.Sample) ([]byte, int)

// Cluster delivers samples to one or several Carbon destinations, each
// over its own Conn. Write is called by one goroutine at a time.
type Cluster struct {
	dist     Distribution
	onDown   OnDown
	replicas int
	diverse  bool
	conns    []*Conn
	hosts    []string // host of each destination, for diverse replicas
	ring     ring
	encode   Encoder
	next     int // the destination any tries first

	// Reused across Writes.
	buf       []byte
	parts     [][]metric.Sample // the samples of each destination
	bufs      [][]byte
	order     []int
	chosen    []int
	down      []bool
	connected []bool
}

// NewCluster returns a Cluster that has not connected yet; cfg must have
// passed Validate. It fails, without any I/O, only when an address names
// a service and there is no Resolver.
func NewCluster(cfg ClusterConfig, encode Encoder) (*Cluster, error) {
	c := &Cluster{
		dist:     cfg.Distribution,
		onDown:   cfg.OnDown,
		replicas: max(cfg.ReplicationFactor, 1),
		diverse:  cfg.DiverseReplicas == nil || *cfg.DiverseReplicas,
		encode:   encode,
	}
	if c.onDown == "" {
		c.onDown = OnDownWait
	}
	dests := cfg.Destinations
	if len(dests) == 0 {
		dests = []Destination{{Address: cfg.Conn.Address}}
	}
	if c.dist == "" {
		c.dist = DistributeAll // one destination: all of them
	}
	nodes := make([]RingNode, len(dests))
	for i, d := range dests {
		cc := cfg.Conn
		cc.Address = d.Address
		conn, err := NewConn(cc)
		if err != nil {
			for _, done := range c.conns {
				_ = done.Close()
			}
			if len(cfg.Destinations) > 0 {
				return nil, fmt.Errorf("destinations[%d].%w", i, err)
			}
			return nil, err
		}
		c.conns = append(c.conns, conn)
		nodes[i] = ringNode(d)
		c.hosts = append(c.hosts, nodes[i].Host)
	}
	if c.dist.hashed() {
		r, err := newRing(c.dist, nodes)
		if err != nil {
			return nil, err
		}
		c.ring = r
		c.parts = make([][]metric.Sample, len(c.conns))
		c.bufs = make([][]byte, len(c.conns))
	}
	c.down = make([]bool, len(c.conns))
	c.connected = make([]bool, len(c.conns))
	return c, nil
}

// Connect starts connecting to every destination in the background (see
// Conn.Connect) and returns without waiting; its error joins those of the
// destinations that are backing off.
func (c *Cluster) Connect(ctx context.Context) error {
	var errs []error
	for _, conn := range c.conns {
		if err := conn.Connect(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Connected reports whether the cluster can deliver right now without
// waiting for a reconnect: every destination connected when each batch
// needs them all (all and the hashing distributions with on_down wait),
// any one otherwise.
func (c *Cluster) Connected() bool {
	needAll := c.onDown == OnDownWait && (c.dist == DistributeAll || c.dist.hashed())
	for _, conn := range c.conns {
		if conn.Connected() != needAll {
			return !needAll
		}
	}
	return needAll
}

// Reconnects sums the reconnects of every destination.
func (c *Cluster) Reconnects() uint64 {
	var n uint64
	for _, conn := range c.conns {
		n += conn.Reconnects()
	}
	return n
}

// Close closes every connection.
func (c *Cluster) Close() error {
	var errs []error
	for _, conn := range c.conns {
		if err := conn.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Write delivers samples as the distribution says and returns how many
// sample copies the encoder left out. A nil error means every sample is
// on the socket of each destination it was due at; on error the router
// sends the whole batch again, and destinations that already took their
// part get it twice, which Carbon, keeping one value per timestamp, does
// not mind.
func (c *Cluster) Write(ctx context.Context, samples []metric.Sample) (int, error) {
	if c.ring != nil {
		return c.writeHashed(ctx, samples)
	}
	var skipped int
	c.buf, skipped = c.encode(c.buf[:0], samples)
	if len(c.buf) == 0 {
		return skipped, nil
	}
	var err error
	switch {
	case len(c.conns) == 1:
		err = c.conns[0].Write(ctx, c.buf)
	case c.dist == DistributeAll:
		err = c.writeAll(ctx)
	case c.dist == DistributeAny:
		err = c.writeFirst(ctx, c.next)
	default: // failover
		err = c.writeFirst(ctx, 0)
	}
	c.buf = trimBuffer(c.buf)
	return skipped, err
}

// unavailable returns the error of the first of conns that is not
// connected (it says whether a dial is under way or when the next attempt
// is due, and what went wrong), or nil when all are. It asks every one,
// so that each that is down starts dialling now, not one per batch.
func unavailable(conns []*Conn, skip func(i int) bool) error {
	var first error
	for i, conn := range conns {
		if skip != nil && skip(i) {
			continue
		}
		if err := conn.unavailable(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// keptBuffer is the largest encoding buffer kept between writes; a rare
// huge batch should not pin its memory for good.
const keptBuffer = 16 << 20

func trimBuffer(b []byte) []byte {
	if cap(b) > keptBuffer {
		return nil
	}
	return b
}

// writeAll sends c.buf to every destination. With on_down wait it does
// not start while a destination is waiting out its backoff (writing to
// the others would only be repeated on the retry), and fails if any
// write fails; with next one destination taking it is enough.
func (c *Cluster) writeAll(ctx context.Context) error {
	if c.onDown == OnDownWait {
		if err := unavailable(c.conns, nil); err != nil {
			return err
		}
	}
	var errs []error
	delivered := 0
	for _, conn := range c.conns {
		if err := conn.Write(ctx, c.buf); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		delivered++
	}
	if len(errs) == 0 || c.onDown == OnDownNext && delivered > 0 && ctx.Err() == nil {
		return nil
	}
	return errors.Join(errs...)
}

// writeFirst sends c.buf to the first destination, from start on in
// order, that takes it. Destinations waiting out a backoff fail at once.
func (c *Cluster) writeFirst(ctx context.Context, start int) error {
	var errs []error
	for n := range c.conns {
		i := (start + n) % len(c.conns)
		err := c.conns[i].Write(ctx, c.buf)
		if err == nil {
			c.next = (i + 1) % len(c.conns)
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// writeHashed splits samples by node and writes each node its part. With
// on_down next a node that is down, or whose write fails, is left out and
// the split is done again, so its samples move to the next node on the
// ring; at most once per node.
func (c *Cluster) writeHashed(ctx context.Context, samples []metric.Sample) (int, error) {
	clear(c.down)
	if c.onDown == OnDownNext {
		for i, conn := range c.conns {
			c.down[i] = conn.unavailable() != nil
		}
	}
	for {
		if err := c.split(samples); err != nil {
			return 0, err
		}
		if c.onDown == OnDownWait {
			// Fail before writing anything while a node that has
			// samples due is not connected: the others would only get
			// the same samples again on the retry.
			if err := unavailable(c.conns, func(i int) bool { return len(c.parts[i]) == 0 }); err != nil {
				return 0, err
			}
		}
		skipped, failed, err := c.writeParts(ctx)
		if err == nil || c.onDown == OnDownWait || ctx.Err() != nil || failed < 0 {
			return skipped, err
		}
		c.down[failed] = true
	}
}

// split fills c.parts with the samples each node is due.
func (c *Cluster) split(samples []metric.Sample) error {
	for i := range c.parts {
		c.parts[i] = c.parts[i][:0]
	}
	for i := range samples {
		s := &samples[i]
		c.chosen = c.nodesFor(c.chosen[:0], s.Path)
		if len(c.chosen) == 0 {
			return c.allDown()
		}
		for _, node := range c.chosen {
			c.parts[node] = append(c.parts[node], *s)
		}
	}
	return nil
}

// nodesFor appends the nodes a sample with this path goes to: the first
// replicas nodes of its ring order, skipping nodes that are down (on_down
// next) and, with diverse replicas, further nodes on a host already chosen.
func (c *Cluster) nodesFor(dst []int, path string) []int {
	want := c.replicas
	diverse := c.diverse && c.dist == DistributeCarbonCH && c.replicas > 1
	if c.onDown == OnDownNext || diverse {
		want = len(c.conns) // the whole order, to skip nodes
	}
	c.order = c.ring.appendOrder(c.order[:0], path, want)
	start := len(dst)
	for _, node := range c.order {
		if len(dst)-start == c.replicas {
			break
		}
		if c.down[node] || diverse && c.hostTaken(node, dst[start:]) {
			continue
		}
		dst = append(dst, node)
	}
	return dst
}

// hostTaken reports whether one of the chosen nodes is on node's host
// (carbon's DIVERSE_REPLICAS).
func (c *Cluster) hostTaken(node int, chosen []int) bool {
	for _, n := range chosen {
		if c.hosts[n] == c.hosts[node] {
			return true
		}
	}
	return false
}

// allDown is the error when no node can take a sample under on_down next:
// the error of a node that is down, which says why.
func (c *Cluster) allDown() error {
	if err := unavailable(c.conns, func(i int) bool { return !c.down[i] }); err != nil {
		return err
	}
	return fmt.Errorf("%s: %w: every destination is down", c.conns[0].prefix, metric.ErrNotConnected)
}

// writeParts encodes and writes each node's part, stopping at the first
// failure: with on_down wait the whole batch is retried anyway, and with
// next it is split again without the node that failed. Nodes that are not
// connected go first (their Write fails at once), so that a node that is
// down costs the others no copies. It returns the index of the node that
// failed, or -1.
func (c *Cluster) writeParts(ctx context.Context) (skipped, failed int, err error) {
	for i, conn := range c.conns {
		c.connected[i] = conn.Connected()
	}
	for _, dialling := range []bool{true, false} {
		for i, part := range c.parts {
			if len(part) == 0 || c.connected[i] == dialling {
				continue
			}
			var n int
			c.bufs[i], n = c.encode(c.bufs[i][:0], part)
			skipped += n
			if len(c.bufs[i]) == 0 {
				continue
			}
			werr := c.conns[i].Write(ctx, c.bufs[i])
			c.bufs[i] = trimBuffer(c.bufs[i])
			if werr != nil {
				return skipped, i, werr
			}
		}
	}
	return skipped, -1, nil
}
