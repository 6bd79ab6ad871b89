package kafkabroker

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shovel-metrics/shovel/router/kafka/kafkatest"
)

// Record is one message to produce; the same type as kafkatest's, so that
// helpers serve both brokers.
type Record = kafkatest.Record

// Topic describes a topic to create.
type Topic struct {
	Name       string
	Partitions int32
	// Replicas is the replication factor; 0 means every node (at most 3).
	Replicas int16
	// Configs are topic configs, e.g. min.insync.replicas.
	Configs map[string]string
}

// CreateTopic creates the topic and waits until every partition has a leader.
func (c *Cluster) CreateTopic(t testing.TB, tp Topic) {
	t.Helper()
	if err := c.CreateTopicContext(context.Background(), tp); err != nil {
		t.Fatalf("kafkabroker: %v", err)
	}
}

// CreateTopicContext is CreateTopic returning the error.
func (c *Cluster) CreateTopicContext(ctx context.Context, tp Topic) error {
	if tp.Partitions == 0 {
		tp.Partitions = 1
	}
	if tp.Replicas == 0 {
		tp.Replicas = int16(min(3, len(c.Nodes)))
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = tp.Name, tp.Partitions, tp.Replicas
	for k, v := range tp.Configs {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, cfg)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, c.client)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", tp.Name, err)
	}
	for _, r := range resp.Topics {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("create topic %s: %w", tp.Name, err)
		}
	}
	for p := int32(0); p < tp.Partitions; p++ {
		for {
			_, err := c.leader(tp.Name, p)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("topic %s partition %d: %w", tp.Name, p, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// Leader returns the node that leads the partition.
func (c *Cluster) Leader(t testing.TB, topic string, partition int32) *Node {
	t.Helper()
	id, err := c.leader(topic, partition)
	if err != nil {
		t.Fatalf("kafkabroker: leader of %s[%d]: %v", topic, partition, err)
	}
	return c.Node(id)
}

// Replicas returns the in-sync replicas of the partition.
func (c *Cluster) ISR(t testing.TB, topic string, partition int32) []int32 {
	t.Helper()
	p, err := c.partitionMeta(topic, partition)
	if err != nil {
		t.Fatalf("kafkabroker: %s[%d]: %v", topic, partition, err)
	}
	return p.ISR
}

func (c *Cluster) leader(topic string, partition int32) (int32, error) {
	p, err := c.partitionMeta(topic, partition)
	if err != nil {
		return -1, err
	}
	if p.Leader < 0 {
		return -1, errNoLeader
	}
	return p.Leader, nil
}

func (c *Cluster) partitionMeta(topic string, partition int32) (*kmsg.MetadataResponseTopicPartition, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, c.client)
	if err != nil {
		return nil, err
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, err
		}
		for i, p := range t.Partitions {
			if p.Partition == partition {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return nil, err
				}
				return &t.Partitions[i], nil
			}
		}
	}
	return nil, fmt.Errorf("no partition %d in the metadata of %s", partition, topic)
}

func toKgo(recs []Record) []*kgo.Record {
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		kr := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Value: r.Value}
		for k, v := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		krs[i] = kr
	}
	return krs
}

// Produce writes the records with acks=all and waits until the cluster has
// them all, failing the test if it cannot within a minute.
func (c *Cluster) Produce(t testing.TB, recs ...Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.ProduceContext(ctx, recs...); err != nil {
		t.Fatalf("kafkabroker: produce: %v", err)
	}
}

// ProduceContext is Produce returning the error, for producers running in
// a goroutine. The client retries through leader changes.
func (c *Cluster) ProduceContext(ctx context.Context, recs ...Record) error {
	return c.client.ProduceSync(ctx, toKgo(recs)...).FirstErr()
}

// ProduceCompressed produces the records in batches compressed with codec
// ("gzip", "snappy", "lz4" or "zstd"), from a client of their own.
func (c *Cluster) ProduceCompressed(t testing.TB, codec string, recs ...Record) {
	t.Helper()
	var comp kgo.CompressionCodec
	switch codec {
	case "gzip":
		comp = kgo.GzipCompression()
	case "snappy":
		comp = kgo.SnappyCompression()
	case "lz4":
		comp = kgo.Lz4Compression()
	case "zstd":
		comp = kgo.ZstdCompression()
	default:
		t.Fatalf("kafkabroker: unknown codec %q", codec)
	}
	cl := c.newClient(t, kgo.ProducerBatchCompression(comp), kgo.ProducerLinger(50*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, toKgo(recs)...).FirstErr(); err != nil {
		t.Fatalf("kafkabroker: produce %s: %v", codec, err)
	}
}

// ProduceTransaction produces the records in one transaction and commits
// it, or aborts it once the cluster has them all.
func (c *Cluster) ProduceTransaction(t testing.TB, commit bool, recs ...Record) {
	t.Helper()
	id := "kafkabroker-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cl := c.newClient(t, kgo.TransactionalID(id))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("kafkabroker: begin transaction: %v", err)
	}
	if err := cl.ProduceSync(ctx, toKgo(recs)...).FirstErr(); err != nil {
		t.Fatalf("kafkabroker: produce in transaction: %v", err)
	}
	end := kgo.TryAbort
	if commit {
		end = kgo.TryCommit
	}
	if err := cl.EndTransaction(ctx, end); err != nil {
		t.Fatalf("kafkabroker: end transaction (commit %v): %v", commit, err)
	}
}

func (c *Cluster) newClient(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(c.addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(100000), kgo.RequiredAcks(kgo.AllISRAcks())}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kafkabroker: client: %v", err)
	}
	return cl
}

// Committed returns the group's committed offset for each partition of
// topic that has one.
func (c *Cluster) Committed(t testing.TB, group, topic string) map[int32]int64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.committed(group, topic)
		if err == nil {
			return out
		}
		// The offsets topic is created on first use, and moves with its
		// leader: the coordinator is "not available" meanwhile.
		if !kerr.IsRetriable(err) || time.Now().After(deadline) {
			t.Fatalf("kafkabroker: offset fetch: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) committed(group, topic string) (map[int32]int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < 64; p++ {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, c.client)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode == 0 && p.Offset >= 0 {
				out[p.Partition] = p.Offset
			}
		}
	}
	return out, nil
}

// CommittedTotal is the sum of the group's committed offsets on topic:
// with every partition starting at 0, the number of messages committed
// (transaction markers take an offset each too).
func (c *Cluster) CommittedTotal(t testing.TB, group, topic string) int64 {
	t.Helper()
	var n int64
	for _, off := range c.Committed(t, group, topic) {
		n += off
	}
	return n
}

// EndOffsets returns each partition's high watermark.
func (c *Cluster) EndOffsets(t testing.TB, topic string, partitions int32) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = 1 // read_committed: the last stable offset
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < partitions; p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// ListOffsets goes to each partition's leader; kgo routes it.
	resp, err := req.RequestWith(ctx, c.client)
	if err != nil {
		t.Fatalf("kafkabroker: list offsets: %v", err)
	}
	out := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				t.Fatalf("kafkabroker: list offsets %s[%d]: %v", topic, p.Partition, err)
			}
			out[p.Partition] = p.Offset
		}
	}
	return out
}

// GroupMembers returns the instance ids (or member ids, for dynamic
// members) of a classic or consumer group's members.
func (c *Cluster) GroupMembers(t testing.TB, group string) []string {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, c.client)
	if err != nil {
		t.Fatalf("kafkabroker: describe group %s: %v", group, err)
	}
	var out []string
	for _, g := range resp.Groups {
		for _, m := range g.Members {
			if m.InstanceID != nil {
				out = append(out, *m.InstanceID)
			} else {
				out = append(out, m.MemberID)
			}
		}
	}
	return out
}

// AllowRead grants principal (as "User:name") what a consumer of topic in
// group needs: READ and DESCRIBE on the topic and READ on the group.
func (c *Cluster) AllowRead(t testing.TB, principal, topic, group string) {
	t.Helper()
	c.allow(t, principal, []aclSpec{
		{kmsg.ACLResourceTypeTopic, topic, kmsg.ACLOperationRead},
		{kmsg.ACLResourceTypeTopic, topic, kmsg.ACLOperationDescribe},
		{kmsg.ACLResourceTypeGroup, group, kmsg.ACLOperationRead},
	})
}

// AllowGroup grants principal READ on group only: a member that may join
// the group but read no topic.
func (c *Cluster) AllowGroup(t testing.TB, principal, group string) {
	t.Helper()
	c.allow(t, principal, []aclSpec{{kmsg.ACLResourceTypeGroup, group, kmsg.ACLOperationRead}})
}

type aclSpec struct {
	typ  kmsg.ACLResourceType
	name string
	op   kmsg.ACLOperation
}

func (c *Cluster) allow(t testing.TB, principal string, specs []aclSpec) {
	t.Helper()
	req := kmsg.NewPtrCreateACLsRequest()
	for _, s := range specs {
		cr := kmsg.NewCreateACLsRequestCreation()
		cr.ResourceType, cr.ResourceName, cr.ResourcePatternType = s.typ, s.name, kmsg.ACLResourcePatternTypeLiteral
		cr.Principal, cr.Host, cr.Operation, cr.PermissionType = principal, "*", s.op, kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, cr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, c.client)
	if err != nil {
		t.Fatalf("kafkabroker: create ACLs: %v", err)
	}
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("kafkabroker: create ACL for %s: %v", principal, err)
		}
	}
	// ACLs travel through the metadata log to every node: give them a moment.
	time.Sleep(500 * time.Millisecond)
}

// Consume reads the first n records of topic (all partitions, from the
// start, read_committed), failing the test if they don't arrive within 30 s.
func (c *Cluster) Consume(t testing.TB, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := c.newClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kafkabroker: got %d of %d records from %s", len(out), n, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}
