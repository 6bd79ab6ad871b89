package kafka

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Static group membership (group.instance.id, KIP-345) lets a restarted
// shovel take back its partitions at once: the group keeps a static
// member's assignment through its session timeout instead of rebalancing
// when it vanishes, and gives it back when the same id joins again.
//
// The id must be unique within the group at any moment. Two live members
// with one id fence each other: under the classic protocol the newcomer
// wins and the older member gets a fatal "fenced" error; under the
// consumer protocol (KIP-848) the newcomer is refused. Either way one of
// them stops, so shovel exits with an error that names kafka.instance_id.

// InstanceNone disables static membership (kafka.instance_id: none).
const InstanceNone = "none"

// validInstanceID is what Kafka accepts in group.instance.id, as in topic names.
var validInstanceID = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// CheckInstanceID validates a configured kafka.instance_id ("" for the
// default, "none" for no static membership).
func CheckInstanceID(id string) error {
	if id == "" || id == InstanceNone || validInstanceID.MatchString(id) {
		return nil
	}
	return fmt.Errorf("%q: use 1 to 249 of a-z A-Z 0-9 . _ - (or \"none\" for no static membership)", id)
}

// maxSlots bounds how many shovels of one group on one host get a default
// instance id each; more than that is surely a mistake.
const maxSlots = 64

// instanceClaim is a group.instance.id held by this process: a lock file
// that a second process on the host asking for the same id cannot take.
// The kernel releases it when the process dies, SIGKILL included.
type instanceClaim struct {
	id string
	f  *os.File
}

func (c *instanceClaim) release() {
	if c != nil && c.f != nil {
		c.f.Close()
	}
}

// ErrInstanceInUse is returned when another process on this host holds
// the configured kafka.instance_id for the same group.
var ErrInstanceInUse = errors.New("kafka.instance_id in use")

// claimInstance picks this process's group.instance.id. "none" gives ""
// (dynamic membership). An explicit id is locked for the group on this
// host: a second shovel asking for it fails at once with a message that
// says what to change. The default is "shovel-<hostname>-<n>" with the
// lowest n (from 1) that no other live shovel of the group on this host
// holds: one shovel per host or pod always gets "-1", so a restart is
// recognised, and several on one host get ids of their own.
func claimInstance(configured, group, lockDir string) (*instanceClaim, error) {
	if configured == InstanceNone {
		return nil, nil
	}
	if err := CheckInstanceID(configured); err != nil {
		return nil, fmt.Errorf("kafka.instance_id: %w", err)
	}
	if err := os.MkdirAll(lockDir, 0o777); err != nil {
		return nil, fmt.Errorf("kafka.instance_id: lock directory: %w", err)
	}
	if configured != "" {
		c, err := lockInstance(lockDir, group, configured)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another shovel on this host consumes group %q as %q; "+
				"give each shovel of a group its own kafka.instance_id, or leave it unset for one chosen per process",
				ErrInstanceInUse, group, configured)
		}
		return c, err
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.Trim(regexp.MustCompile(`[^a-zA-Z0-9._-]+`).ReplaceAllString(host, "_"), "_")
	if len(host) > 200 {
		host = host[:200]
	}
	for n := 1; n <= maxSlots; n++ {
		c, err := lockInstance(lockDir, group, "shovel-"+host+"-"+strconv.Itoa(n))
		if errors.Is(err, unix.EWOULDBLOCK) {
			continue
		}
		return c, err
	}
	return nil, fmt.Errorf("kafka.instance_id: %d shovels of group %q already run on this host", maxSlots, group)
}

func lockInstance(dir, group, id string) (*instanceClaim, error) {
	// The group may hold any character and be long; the file name must not.
	sum := sha256.Sum256([]byte(group + "\x00" + id))
	name := fmt.Sprintf("shovel-instance-%x.lock", sum[:12])
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("kafka.instance_id: lock %q: %w", id, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	// Who holds it, for whoever looks.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &instanceClaim{id: id, f: f}, nil
}

// DefaultLockDir is where instance-id locks live: one per host (or
// container), shared by every shovel there.
func DefaultLockDir() string { return filepath.Join(os.TempDir(), "shovel") }
