// Package carbontest runs the real carbon-cache (Debian's graphite-carbon)
// for integration tests, and reads back what it wrote with whisper-fetch
// (python3-whisper).
//
// Each Start gets its own instance: its own loopback ports, config and
// whisper files under t.TempDir(), stopped by t.Cleanup. Tests are skipped
// when the tools are missing, except under CI=true, where that is a failure,
// and always under -short.
//
// Carbon writes asynchronously (its writer wakes about once a second) and
// only keeps points inside the retention, so tests send recent timestamps
// and read with WaitFor.
package carbontest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shovel-metrics/shovel/router/metric"
)

const (
	// DefaultRetention keeps one point per second for two hours: enough
	// for any test, and exact (no rollup) for every timestamp it sends.
	DefaultRetention = "1s:2h"

	defaultStartTimeout = 30 * time.Second
	stopGrace           = 10 * time.Second
	startAttempts       = 5        // new ports after a bind race, at most this often
	logDumpMax          = 64 << 10 // bytes of carbon's log shown when a test fails
)

// Point is one non-null whisper point.
type Point struct {
	Time  int64 // Unix seconds
	Value float64
}

// Option changes how Start configures carbon-cache.
type Option func(*options)

type options struct {
	retention    string
	settings     [][2]string
	startTimeout time.Duration
	tagDB        bool
}

// WithTagDB turns carbon's tags on (ENABLE_TAGS) and points its tag
// database client (GRAPHITE_URL, graphite-web's /tags/tagMultiSeries,
// which carbon POSTs every new series to) at a server of the test's own
// that records the series: see TagDB. Carbon stores tagged series
// whether or not tags are on; this shows the series as graphite-web's
// tag index would get them.
func WithTagDB() Option {
	return func(o *options) { o.tagDB = true }
}

// WithRetention sets the retentions of the catch-all storage schema, in
// storage-schemas.conf syntax ("1s:2h", "10s:1h,1m:1d").
func WithRetention(retentions string) Option {
	return func(o *options) { o.retention = retentions }
}

// WithSetting adds or overrides one key of carbon.conf's [cache] section,
// for example WithSetting("MAX_CACHE_SIZE", "10"). Ports, directories and
// USER belong to the harness and cannot be set.
func WithSetting(key, value string) Option {
	return func(o *options) { o.settings = append(o.settings, [2]string{key, value}) }
}

// WithStartTimeout bounds how long Start and Restart wait for carbon-cache
// to accept connections (default 30s).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) { o.startTimeout = d }
}

// harnessKeys are the carbon.conf keys that WithSetting must not touch.
var harnessKeys = map[string]bool{
	"STORAGE_DIR": true, "LOCAL_DATA_DIR": true, "WHITELISTS_DIR": true, "LOG_DIR": true,
	"PID_DIR": true, "USER": true, "LINE_RECEIVER_INTERFACE": true, "LINE_RECEIVER_PORT": true,
	"PICKLE_RECEIVER_INTERFACE": true, "PICKLE_RECEIVER_PORT": true,
	"CACHE_QUERY_INTERFACE": true, "CACHE_QUERY_PORT": true,
}

// Carbon is one running carbon-cache.
type Carbon struct {
	t          testing.TB
	cacheBin   string
	fetchBin   string
	dir        string
	confFile   string
	pidFile    string
	logFile    string
	whisperDir string
	opts       options
	span       time.Duration // of the first (finest) archive; WaitFor reads within it

	linePort, picklePort, queryPort int

	mu   sync.Mutex
	proc *process // nil while stopped

	tagDB *tagDB // nil without WithTagDB
}

// process is one run of carbon-cache.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returned
	err  error         // cmd.Wait's result, set before done is closed
}

// Start runs a fresh carbon-cache for t and stops it when t ends; on failure
// its log is added to t's output.
func Start(t testing.TB, opts ...Option) *Carbon {
	t.Helper()
	if testing.Short() {
		t.Skip("carbontest: real carbon-cache is not started under -short")
	}
	if msg, fatal := toolProblem(os.Getenv("CI"), exec.LookPath); msg != "" {
		if fatal {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cacheBin, _ := exec.LookPath("carbon-cache")
	fetchBin, _ := exec.LookPath("whisper-fetch")

	o := options{retention: DefaultRetention, startTimeout: defaultStartTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	archives, err := parseRetentions(o.retention)
	if err != nil {
		t.Fatalf("carbontest: %v", err)
	}
	for _, kv := range o.settings {
		if harnessKeys[strings.ToUpper(kv[0])] {
			t.Fatalf("carbontest: %s is set by the harness", kv[0])
		}
	}

	dir := t.TempDir()
	c := &Carbon{
		t:          t,
		cacheBin:   cacheBin,
		fetchBin:   fetchBin,
		dir:        dir,
		confFile:   filepath.Join(dir, "carbon.conf"),
		pidFile:    filepath.Join(dir, "run", "carbon-cache.pid"),
		logFile:    filepath.Join(dir, "carbon.log"),
		whisperDir: filepath.Join(dir, "storage", "whisper"),
		opts:       o,
		span:       archives[0].span(),
	}
	if o.tagDB {
		c.tagDB = startTagDB(t)
	}
	// carbon-cache reads storage-schemas.conf and storage-aggregation.conf
	// from the directory of the --config file.
	if err := c.writeSchemas(); err != nil {
		t.Fatalf("carbontest: %v", err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("carbontest: carbon-cache log %s:\n%s", c.logFile, c.logTail(0))
		}
	})

	for attempt := 1; ; attempt++ {
		ports, err := freePorts(3)
		if err != nil {
			t.Fatalf("carbontest: %v", err)
		}
		c.linePort, c.picklePort, c.queryPort = ports[0], ports[1], ports[2]
		if err := c.writeConf(); err != nil {
			t.Fatalf("carbontest: %v", err)
		}
		err = c.start()
		if err == nil {
			return c
		}
		if !errors.Is(err, errPortInUse) || attempt == startAttempts {
			t.Fatalf("carbontest: %v", err)
		}
		t.Logf("carbontest: %v; retrying on other ports", err)
	}
}

// toolProblem says why the real carbon cannot be used, and whether that
// fails the test (in CI the tools must be there) rather than skipping it.
func toolProblem(ci string, lookPath func(string) (string, error)) (msg string, fatal bool) {
	var missing []string
	for _, tool := range []string{"carbon-cache", "whisper-fetch"} {
		if _, err := lookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return "", false
	}
	msg = fmt.Sprintf("carbontest: %s not on PATH (apt-get install graphite-carbon python3-whisper)",
		strings.Join(missing, " and "))
	if inCI, _ := strconv.ParseBool(ci); inCI {
		return msg + "; CI must have them, see .ci/run", true
	}
	return msg, false
}

// LineAddr is the plaintext receiver, "127.0.0.1:port".
func (c *Carbon) LineAddr() string { return hostPort(c.linePort) }

// PickleAddr is the pickle receiver, "127.0.0.1:port".
func (c *Carbon) PickleAddr() string { return hostPort(c.picklePort) }

// WhisperFile is where carbon keeps the points of a metric name: for a
// dotted path, its segments as directories; for a Graphite tagged name,
// what carbon's TaggedSeries.encode gives with TAG_HASH_FILENAMES (its
// default): _tagged/abc/def/<sha256 of the name>.wsp, the digest of the
// normalized name, since carbon-cache normalizes every name it receives.
func (c *Carbon) WhisperFile(path string) string {
	if metric.IsTagged(path) {
		if n, err := metric.Normalize(path); err == nil {
			path = n
		}
		sum := sha256.Sum256([]byte(path))
		h := hex.EncodeToString(sum[:])
		return filepath.Join(c.whisperDir, "_tagged", h[:3], h[3:6], h+".wsp")
	}
	return filepath.Join(c.whisperDir, filepath.FromSlash(strings.ReplaceAll(path, ".", "/"))+".wsp")
}

// Stop shuts carbon-cache down (SIGTERM, then SIGKILL after 10s) and
// returns when it has exited. Carbon usually writes its cache out on
// SIGTERM, but not reliably: WaitFor points that must survive a Stop. Stop
// may be called from any goroutine, and more than once.
func (c *Carbon) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.proc
	if p == nil {
		return
	}
	c.proc = nil
	select {
	case <-p.done:
		c.t.Logf("carbontest: carbon-cache had already exited: %v", p.err)
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		c.t.Logf("carbontest: carbon-cache ignored SIGTERM for %s; killing it", stopGrace)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Restart stops carbon-cache and starts it again on the same ports and
// files. It must be called from the test's goroutine: it fails the test if
// carbon does not come back.
func (c *Carbon) Restart() {
	c.t.Helper()
	c.Stop()
	if err := c.start(); err != nil {
		c.t.Fatalf("carbontest: restart: %v", err)
	}
}

var errPortInUse = errors.New("port already in use")

// start runs carbon-cache with the current config and waits until it
// accepts connections on all its ports.
func (c *Carbon) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return errors.New("carbon-cache is already running")
	}
	// A pidfile left by a killed run makes "start" refuse if its pid has
	// been reused meanwhile.
	_ = os.Remove(c.pidFile)

	logf, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	logStart, _ := logf.Seek(0, io.SeekEnd)
	fmt.Fprintf(logf, "---- carbontest: starting carbon-cache (line %d, pickle %d, cache query %d)\n",
		c.linePort, c.picklePort, c.queryPort)

	// Carbon's own "start" action, in the foreground: twistd --nodaemon logs
	// to stdout instead of LOG_DIR and keeps the process our child.
	cmd := exec.Command(c.cacheBin,
		"--config="+c.confFile,
		"--pidfile="+c.pidFile,
		"--logdir="+filepath.Join(c.dir, "log"),
		"--nodaemon",
		"start")
	cmd.Dir = c.dir
	cmd.Env = pythonEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", c.cacheBin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()

	stop := func() {
		_ = cmd.Process.Kill()
		<-p.done
	}
	deadline := time.Now().Add(c.opts.startTimeout)
	for {
		select {
		case <-p.done:
			out := c.logTail(logStart)
			if strings.Contains(out, "Address already in use") || strings.Contains(out, "CannotListenError") {
				return fmt.Errorf("carbon-cache could not bind: %w", errPortInUse)
			}
			return fmt.Errorf("carbon-cache exited while starting (%v); its log follows the test", p.err)
		default:
		}
		ok, err := c.ready(cmd.Process.Pid)
		if err != nil {
			stop()
			return err
		}
		if ok {
			c.proc = p
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("carbon-cache did not listen within %s; its log follows the test", c.opts.startTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports whether carbon-cache (pid) listens on its line and pickle
// ports. Probing with a connection is not enough: carbon binds the line
// port first, so while it dies on a pickle port that another process took,
// both ports still accept. And carbon binds with SO_REUSEPORT, so a second
// carbon on the same port would start fine and take half the connections.
// So on Linux ready asks /proc whom the listening sockets belong to.
func (c *Carbon) ready(pid int) (bool, error) {
	for _, port := range []int{c.linePort, c.picklePort} {
		n, ours, haveProc := listeners(port, pid)
		if !haveProc {
			return c.accepting(), nil
		}
		if !ours {
			return false, nil
		}
		if n > 1 {
			return false, fmt.Errorf("another process listens on port %d too: %w", port, errPortInUse)
		}
	}
	return c.accepting(), nil
}

// accepting reports whether the line and pickle receivers take connections.
func (c *Carbon) accepting() bool {
	for _, port := range []int{c.linePort, c.picklePort} {
		conn, err := net.DialTimeout("tcp", hostPort(port), 200*time.Millisecond)
		if err != nil {
			return false
		}
		conn.Close()
	}
	return true
}

// Fetch returns the non-null points of path with from <= Time <= until, as
// whisper-fetch reads them from the whisper file. Whisper answers nothing
// for a range in the future or past the retention, and clamps until to now.
func (c *Carbon) Fetch(path string, from, until time.Time) ([]Point, error) {
	file := c.WhisperFile(path)
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("carbontest: fetch %s: %w", path, err)
	}
	fromSec, untilSec := from.Unix(), until.Unix()
	// whisper-fetch starts at the first step after --from; one second
	// earlier makes from inclusive.
	cmd := exec.Command(c.fetchBin, "--json",
		"--from="+strconv.FormatInt(fromSec-1, 10),
		"--until="+strconv.FormatInt(untilSec, 10),
		file)
	cmd.Env = pythonEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("carbontest: whisper-fetch %s: %v: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	points, err := parseFetch(out)
	if err != nil {
		return nil, fmt.Errorf("carbontest: whisper-fetch %s: %w", path, err)
	}
	kept := points[:0]
	for _, p := range points {
		if p.Time >= fromSec && p.Time <= untilSec {
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// nonJSONFloat matches the inf and nan that whisper-fetch prints unquoted
// (it formats Python lists with str).
var nonJSONFloat = regexp.MustCompile(`([\[,]\s*)(-?(?:inf|nan))\b`)

// parseFetch reads whisper-fetch --json output.
func parseFetch(out []byte) ([]Point, error) {
	var doc struct {
		Start  int64          `json:"start"`
		Step   int64          `json:"step"`
		Values []whisperValue `json:"values"`
	}
	if err := json.Unmarshal(nonJSONFloat.ReplaceAll(out, []byte(`$1"$2"`)), &doc); err != nil {
		return nil, fmt.Errorf("parse %q: %w", out, err)
	}
	if doc.Step <= 0 {
		return nil, fmt.Errorf("parse %q: step %d", out, doc.Step)
	}
	var points []Point
	for i, v := range doc.Values {
		if v.ok {
			points = append(points, Point{Time: doc.Start + int64(i)*doc.Step, Value: v.v})
		}
	}
	return points, nil
}

// whisperValue is one entry of whisper-fetch's "values": null, a number, or
// a quoted inf/nan.
type whisperValue struct {
	v  float64
	ok bool
}

func (w *whisperValue) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(strings.Trim(s, `"`), 64)
	if err != nil {
		return err
	}
	w.v, w.ok = f, true
	return nil
}

// WaitFor polls until path's whisper file holds at least want non-null
// points in the finest archive, and returns them; it fails t after timeout.
func (c *Carbon) WaitFor(t testing.TB, path string, want int, timeout time.Duration) []Point {
	t.Helper()
	margin := min(c.span/10, 5*time.Second) // whisper-fetch's now is a little later than ours
	deadline := time.Now().Add(timeout)
	for {
		now := time.Now()
		points, err := c.Fetch(path, now.Add(-c.span+margin), now.Add(time.Minute))
		if err == nil && len(points) >= want {
			return points
		}
		if now.After(deadline) {
			if err != nil {
				t.Fatalf("carbontest: %s: no %d points after %s: %v", path, want, timeout, err)
			}
			t.Fatalf("carbontest: %s: %d points after %s, want at least %d: %v", path, len(points), timeout, want, points)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Carbon) writeSchemas() error {
	for _, sub := range []string{"run", "log", "storage/whisper", "storage/lists"} {
		if err := os.MkdirAll(filepath.Join(c.dir, sub), 0o755); err != nil {
			return err
		}
	}
	schemas := "[default]\npattern = .*\nretentions = " + c.opts.retention + "\n"
	// xFilesFactor 0: a rollup keeps whatever points it has.
	aggregation := "[default]\npattern = .*\nxFilesFactor = 0\naggregationMethod = average\n"
	if err := os.WriteFile(filepath.Join(c.dir, "storage-schemas.conf"), []byte(schemas), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.dir, "storage-aggregation.conf"), []byte(aggregation), 0o644)
}

func (c *Carbon) writeConf() error {
	var b strings.Builder
	set := func(k string, v any) { fmt.Fprintf(&b, "%s = %v\n", k, v) }
	b.WriteString("[cache]\n")
	// Everything inside the temp dir: nothing under /var/lib/graphite,
	// /var/log/carbon or /etc/carbon is read or written.
	set("STORAGE_DIR", filepath.Join(c.dir, "storage"))
	set("LOCAL_DATA_DIR", c.whisperDir)
	set("WHITELISTS_DIR", filepath.Join(c.dir, "storage", "lists"))
	set("LOG_DIR", filepath.Join(c.dir, "log"))
	set("PID_DIR", filepath.Join(c.dir, "run"))
	set("USER", "") // Debian's own config drops to _graphite; we run as whoever runs the test
	set("DATABASE", "whisper")

	set("LINE_RECEIVER_INTERFACE", "127.0.0.1")
	set("LINE_RECEIVER_PORT", c.linePort)
	set("PICKLE_RECEIVER_INTERFACE", "127.0.0.1")
	set("PICKLE_RECEIVER_PORT", c.picklePort)
	set("CACHE_QUERY_INTERFACE", "127.0.0.1")
	set("CACHE_QUERY_PORT", c.queryPort) // cannot be switched off
	set("ENABLE_UDP_LISTENER", "False")
	set("ENABLE_AMQP", "False")
	set("ENABLE_MANHOLE", "False")
	// With tags on, carbon POSTs every new metric to GRAPHITE_URL
	// (http://127.0.0.1:80) for the tag database: WithTagDB's server.
	if c.tagDB != nil {
		set("ENABLE_TAGS", "True")
		set("GRAPHITE_URL", c.tagDB.url)
		set("TAG_UPDATE_INTERVAL", 1)
	} else {
		set("ENABLE_TAGS", "False")
	}
	// No carbon.agents.* self-metrics among the test's files.
	set("CARBON_METRIC_INTERVAL", 0)

	// Write everything, at once.
	set("MAX_CACHE_SIZE", "inf")
	set("MAX_UPDATES_PER_SECOND", "inf")
	set("MAX_CREATES_PER_MINUTE", "inf")
	set("CACHE_WRITE_STRATEGY", "sorted")
	set("WHISPER_AUTOFLUSH", "False")
	set("WHISPER_FALLOCATE_CREATE", "False")

	set("LOG_UPDATES", "False")
	set("LOG_CREATES", "False")
	set("LOG_CACHE_HITS", "False")
	set("LOG_CACHE_QUEUE_SORTS", "False")
	set("LOG_LISTENER_CONN_SUCCESS", "False") // our readiness probes would fill the log
	set("ENABLE_LOGROTATION", "False")

	// Python's ConfigParser rejects a key set twice in a section, so a
	// test's setting replaces the harness's line rather than following it.
	conf := b.String()
	for _, kv := range c.opts.settings {
		conf = removeKey(conf, kv[0])
		conf += fmt.Sprintf("%s = %s\n", strings.ToUpper(kv[0]), kv[1])
	}
	return os.WriteFile(c.confFile, []byte(conf), 0o644)
}

// removeKey drops the line setting key from an ini section.
func removeKey(conf, key string) string {
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		line := sc.Text()
		if k, _, ok := strings.Cut(line, "="); ok && strings.EqualFold(strings.TrimSpace(k), key) {
			continue
		}
		out.WriteString(line + "\n")
	}
	return out.String()
}

// logTail returns carbon's log from offset on, at most its last logDumpMax bytes.
func (c *Carbon) logTail(offset int64) string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if offset > 0 && offset <= int64(len(b)) {
		b = b[offset:]
	}
	if len(b) > logDumpMax {
		b = append([]byte("…\n"), b[len(b)-logDumpMax:]...)
	}
	return string(b)
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// Another process may take one before carbon binds it; start notices and
// Start retries with new ones.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close() // held until all n are picked, so they differ
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// listeners counts the IPv4 sockets listening on port, from /proc/net/tcp,
// and says whether one of them is an open file of process pid. haveProc is
// false where there is no /proc/net/tcp to read.
func listeners(port, pid int) (n int, ours, haveProc bool) {
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, false, false
	}
	suffix := fmt.Sprintf(":%04X", port)
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], suffix) && f[3] == "0A" { // 0A: LISTEN
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, _ := os.ReadDir(fdDir) // none once pid has exited
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && inodes[target] {
			ours = true
			break
		}
	}
	return len(inodes), ours, true
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// pythonEnv is the environment for carbon's Python scripts: ours, without
// variables that would point /usr/bin/python3 at another Python's modules
// (a pyenv or virtualenv on a developer's machine).
func pythonEnv() []string {
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PYTHONPATH=") || strings.HasPrefix(kv, "PYTHONHOME=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// setParentDeathSignal asks the kernel to kill carbon-cache when the test
// binary dies without running its cleanups (a go test -timeout panic).
// Pdeathsig exists on Linux and FreeBSD only; elsewhere this does nothing.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
}

// archive is one parsed retention, "precision:points".
type archive struct {
	precision int64 // seconds per point
	points    int64
}

func (a archive) span() time.Duration {
	return time.Duration(a.precision*a.points) * time.Second
}

var retentionPart = regexp.MustCompile(`^(\d+)([a-z]*)$`)

// parseRetentions reads storage-schemas.conf retentions the way whisper's
// parseRetentionDef does: "60:1440" (seconds, points) or "1m:1d" (units
// s, m, h, d, w, y or any prefix of their full names).
func parseRetentions(s string) ([]archive, error) {
	var out []archive
	for def := range strings.SplitSeq(s, ",") {
		precision, points, ok := strings.Cut(strings.TrimSpace(def), ":")
		if !ok {
			return nil, fmt.Errorf("retention %q: %q is not precision:points", s, def)
		}
		p, err := retentionSeconds(precision)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("retention %q: bad precision %q", s, precision)
		}
		m := retentionPart.FindStringSubmatch(points)
		if m == nil {
			return nil, fmt.Errorf("retention %q: bad points %q", s, points)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		if m[2] != "" {
			secs, err := retentionSeconds(points)
			if err != nil {
				return nil, fmt.Errorf("retention %q: bad points %q", s, points)
			}
			n = secs / p
		}
		if n <= 0 {
			return nil, fmt.Errorf("retention %q: %q keeps no point", s, def)
		}
		out = append(out, archive{precision: p, points: n})
	}
	return out, nil
}

// retentionSeconds reads "90", "90s", "5min", "2h", "1d", "1w" or "1y".
func retentionSeconds(s string) (int64, error) {
	m := retentionPart.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, err
	}
	if m[2] == "" {
		return n, nil
	}
	for _, u := range []struct {
		name string
		secs int64
	}{{"seconds", 1}, {"minutes", 60}, {"hours", 3600}, {"days", 86400}, {"weeks", 7 * 86400}, {"years", 365 * 86400}} {
		if strings.HasPrefix(u.name, m[2]) {
			return n * u.secs, nil
		}
	}
	return 0, fmt.Errorf("bad unit in %q", s)
}
