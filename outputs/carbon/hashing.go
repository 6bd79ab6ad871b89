package carbon

import (
	"crypto/md5"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/shovel-metrics/shovel/router/metric"
)

// The consistent hashes below place a metric on the same node as the relay
// that already feeds a Carbon cluster, so that shovel can take its place
// (or stand beside it) without moving a single whisper file:
//
//   - carbon_ch is carbon-relay's ConsistentHashRing (graphite-project/carbon,
//     lib/carbon/hashing.py, hash type carbon_ch).
//   - fnv1a_ch and jump_fnv1a_ch are carbon-c-relay's (grobian/carbon-c-relay,
//     consistent-hash.c and fnv1a.h).
//
// Each ring answers one question, allocation-free: in which order of
// preference do the nodes hold a metric? The first replication_factor
// distinct nodes are where the relays send it; the rest is the order in
// which on_down: next falls through.
//
// Every ring hashes a name in carbon's normalized form (metric.Normalize:
// Graphite tags sorted, the name's leading '~'s dropped), as carbon-relay
// does with TAG_RELAY_NORMALIZED: a tagged series is one series whatever
// the order its producer wrote its tags in, and carbon-cache stores it
// under that form. A name carbon cannot normalize is hashed as it is, as
// carbon-relay does. Names without ';' or a leading '~' (nearly all) are
// hashed as they are, without another look.

// ringReplicas is how many points each node gets on a carbon_ch or
// fnv1a_ch ring: hard-wired to 100 in both carbon and carbon-c-relay.
const ringReplicas = 100

// RingNode is one destination as the hash rings see it.
type RingNode struct {
	// Host is the address's host part exactly as configured (carbon
	// and carbon-c-relay hash the string, not what it resolves to).
	Host string
	// Port is used by fnv1a_ch only, for nodes without an instance.
	Port int
	// Instance is the optional instance name ("" for none).
	Instance string
}

// ring orders nodes by preference for a metric path.
type ring interface {
	// appendOrder appends the indexes of the nodes holding path, most
	// preferred first, up to count distinct nodes, and returns dst.
	appendOrder(dst []int, path string, count int) []int
}

// ringEntry is one point on a carbon_ch or fnv1a_ch ring.
type ringEntry struct {
	pos  uint32
	node int
}

// pointRing is the classic ring shared by carbon_ch and fnv1a_ch: points
// sorted by position, a metric belongs to the first point at or after its
// own position (Python's bisect_left), wrapping around.
type pointRing struct {
	entries []ringEntry
	nodes   int
	hash    func(key []byte) uint32
	key     []byte // reused for the path's bytes; the caller serialises lookups
}

func (r *pointRing) appendOrder(dst []int, path string, count int) []int {
	if len(path) > 0 && path[0] == '~' || strings.IndexByte(path, ';') >= 0 {
		r.key = appendNormalizedKey(r.key[:0], path)
	} else {
		r.key = append(r.key[:0], path...)
	}
	pos := r.hash(r.key)
	i, _ := slices.BinarySearchFunc(r.entries, pos, func(e ringEntry, p uint32) int {
		switch {
		case e.pos < p:
			return -1
		case e.pos > p:
			return 1
		}
		return 0
	})
	start := len(dst)
	count = min(count, r.nodes)
	for n := 0; n < len(r.entries) && len(dst)-start < count; n++ {
		node := r.entries[(i+n)%len(r.entries)].node
		if !slices.Contains(dst[start:], node) {
			dst = append(dst, node)
		}
	}
	return dst
}

// carbonPosition is carbon's carbonHash for carbon_ch: the first two bytes
// of the MD5 digest, as int(md5(key).hexdigest()[:4], 16).
func carbonPosition(key []byte) uint32 {
	sum := md5.Sum(key)
	return uint32(sum[0])<<8 | uint32(sum[1])
}

// newCarbonRing builds carbon_ch as carbon's ConsistentHashRing does: each
// node (host, instance) gets 100 points at carbonPosition of
// "('host', 'instance'):i" (Python's str of the tuple, None for no
// instance); a point whose position is taken moves up by one until it is
// free, so the order nodes are added in matters, as it does in carbon.
// (carbon-c-relay does not move colliding points; the metrics of the few
// positions involved may land elsewhere under it than under carbon-relay.)
func newCarbonRing(nodes []RingNode) *pointRing {
	r := &pointRing{nodes: len(nodes), hash: carbonPosition}
	taken := make(map[uint32]bool, len(nodes)*ringReplicas)
	var key []byte
	for n, node := range nodes {
		for i := range ringReplicas {
			key = appendCarbonNodeKey(key[:0], node)
			key = append(key, ':')
			key = strconv.AppendInt(key, int64(i), 10)
			pos := carbonPosition(key)
			for taken[pos] {
				pos++
			}
			taken[pos] = true
			r.entries = append(r.entries, ringEntry{pos: pos, node: n})
		}
	}
	slices.SortFunc(r.entries, func(a, b ringEntry) int { return int(a.pos) - int(b.pos) })
	return r
}

// appendCarbonNodeKey appends str((host, instance)) as Python 3 prints it.
// ClusterConfig.Validate keeps quotes and backslashes out of both, so
// repr is just the string in single quotes.
func appendCarbonNodeKey(dst []byte, node RingNode) []byte {
	dst = append(dst, "('"...)
	dst = append(dst, node.Host...)
	dst = append(dst, "', "...)
	if node.Instance == "" {
		return append(dst, "None)"...)
	}
	dst = append(dst, '\'')
	dst = append(dst, node.Instance...)
	return append(dst, "')"...)
}

// fnv1a32 is FNV-1a over key as carbon-c-relay's fnv1a_32 macro computes
// it: each byte goes through C's char, which is signed on x86-64, so bytes
// from 0x80 up are sign-extended before the XOR. Metric paths are nearly
// always ASCII, where this makes no difference.
func fnv1a32(key []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range key {
		h = (h ^ uint32(int32(int8(c)))) * 16777619
	}
	return h
}

// fnv1aPosition is carbon-c-relay's fnv1a_hashpos: the 32-bit hash folded
// to 16 bits.
func fnv1aPosition(key []byte) uint32 {
	h := fnv1a32(key)
	return (h >> 16) ^ (h & 0xffff)
}

// newFNV1aRing builds fnv1a_ch as carbon-c-relay does: 100 points per
// node at fnv1aPosition of "i-host:port", or of "i-instance" when the node
// has an instance (which then replaces host and port entirely); points
// sorted by position, then host, then port; of several points at one
// position the first in that order owns it.
func newFNV1aRing(nodes []RingNode) *pointRing {
	r := &pointRing{nodes: len(nodes), hash: fnv1aPosition}
	var key []byte
	for n, node := range nodes {
		for i := range ringReplicas {
			key = strconv.AppendInt(key[:0], int64(i), 10)
			key = append(key, '-')
			if node.Instance != "" {
				key = append(key, node.Instance...)
			} else {
				key = append(key, node.Host...)
				key = append(key, ':')
				key = strconv.AppendInt(key, int64(node.Port), 10)
			}
			r.entries = append(r.entries, ringEntry{pos: fnv1aPosition(key), node: n})
		}
	}
	slices.SortStableFunc(r.entries, func(a, b ringEntry) int {
		if a.pos != b.pos {
			return int(a.pos) - int(b.pos)
		}
		na, nb := nodes[a.node], nodes[b.node]
		if c := strings.Compare(na.Host, nb.Host); c != 0 {
			return c
		}
		return na.Port - nb.Port
	})
	for i := 1; i < len(r.entries); i++ {
		if r.entries[i].pos == r.entries[i-1].pos {
			r.entries[i].node = r.entries[i-1].node
		}
	}
	return r
}

// jumpRing is carbon-c-relay's jump_fnv1a_ch: Lamping and Veach's jump
// consistent hash of the 64-bit FNV-1a of the path over the node list.
type jumpRing struct {
	buckets []int // node indexes in bucket order
	scratch []int
	key     []byte // reused for the normalized name; the caller serialises lookups
}

// newJumpRing orders the buckets as carbon-c-relay's entrycmp_jump_fnv1a:
// nodes with an instance first, sorted by instance (numerically when both
// are integers, else as strings), then the nodes without one in the order
// they were configured.
func newJumpRing(nodes []RingNode) *jumpRing {
	r := &jumpRing{buckets: make([]int, len(nodes)), scratch: make([]int, len(nodes))}
	for i := range r.buckets {
		r.buckets[i] = i
	}
	slices.SortStableFunc(r.buckets, func(a, b int) int {
		ia, ib := nodes[a].Instance, nodes[b].Instance
		switch {
		case ia == "" && ib == "":
			return a - b
		case ia == "":
			return 1
		case ib == "":
			return -1
		}
		na, erra := strconv.ParseInt(ia, 10, 64)
		nb, errb := strconv.ParseInt(ib, 10, 64)
		if erra == nil && errb == nil {
			return cmpInt64(na, nb)
		}
		return strings.Compare(ia, ib)
	})
	return r
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// appendOrder follows ch_get_nodes for JUMP_FNV1a: the first node is the
// jump hash's bucket; for each further one the hash is stirred with
// xorshift and the chosen bucket is replaced by the last one.
func (r *jumpRing) appendOrder(dst []int, path string, count int) []int {
	var h uint64
	if (len(path) == 0 || path[0] != '~') && strings.IndexByte(path, ';') < 0 { // no tags, no leading '~'
		h = fnv1a64(path)
	} else {
		r.key = appendNormalizedKey(r.key[:0], path)
		h = fnv1a64(unsafe.String(unsafe.SliceData(r.key), len(r.key)))
	}
	left := copy(r.scratch, r.buckets)
	for left > 0 && count > 0 {
		j := jumpBucket(h, left)
		dst = append(dst, r.scratch[j])
		count--
		h ^= h >> 12
		h ^= h << 25
		h ^= h >> 27
		h *= 2685821657736338717
		left--
		r.scratch[j] = r.scratch[left]
	}
	return dst
}

// fnv1a64 is carbon-c-relay's fnv1a_64 macro, with the same sign extension
// of bytes from 0x80 up as fnv1a32.
func fnv1a64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(int64(int8(s[i])))) * 1099511628211
	}
	return h
}

// jumpBucket is Lamping and Veach's jump consistent hash, written as
// carbon-c-relay's jump_bucketpos.
func jumpBucket(key uint64, buckets int) int {
	b, j := int64(-1), int64(0)
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// appendNormalizedKey appends what the rings hash for a name that holds
// a ';' or starts with '~': its carbon normalized form, or the name itself
// when carbon could not normalize it. (Every other name is hashed as it
// is; the rings test for that inline, which is all an untagged name costs.)
func appendNormalizedKey(dst []byte, path string) []byte {
	if n, err := metric.AppendNormalized(dst, path); err == nil {
		return n
	}
	return append(dst, path...)
}

// newRing builds the ring for a hashing distribution.
func newRing(d Distribution, nodes []RingNode) (ring, error) {
	switch d {
	case DistributeCarbonCH:
		return newCarbonRing(nodes), nil
	case DistributeFNV1aCH:
		return newFNV1aRing(nodes), nil
	case DistributeJumpFNV1aCH:
		return newJumpRing(nodes), nil
	}
	return nil, fmt.Errorf("distribution: %q is not a hashing distribution", d)
}

var (
	_ ring = (*pointRing)(nil)
	_ ring = (*jumpRing)(nil)
)
