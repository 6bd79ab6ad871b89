package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shovel-metrics/shovel/router/kafka/kafkabroker"
)

// result is one timed run: the bare consumer or shovel.
type result struct {
	partitions int
	name       string
	messages   int64 // messages read (bare) or routed (shovel)
	samples    int64 // samples carried: read inside the messages (bare) or received by Carbon (shovel)
	startNs    int64 // process started
	firstNs    int64 // first message (bare) or first frame at the listener (shovel)
	lastNs     int64 // last one
	cpu        float64
	hwmKiB     int64
	note       string
	verdict    *verdict // shovel runs only
}

func (r *result) wall() float64 {
	if r.firstNs == 0 || r.lastNs == 0 {
		return 0
	}
	return float64(r.lastNs-r.firstNs) / 1e9
}

func (r *result) sinceStart() float64 {
	if r.lastNs == 0 {
		return 0
	}
	return float64(r.lastNs-r.startNs) / 1e9
}

func runBench(ctx context.Context, o *options, out io.Writer) (bool, error) {
	w := &o.work
	fmt.Fprintf(out, "shovel-bench: %d messages × %d samples in %d objects, %.1f%% bad; partitions %v; instances %d",
		w.messages, w.samples, w.objects, w.bad*100, o.partitions, o.instances)
	if len(o.settings) > 0 {
		fmt.Fprintf(out, "; -X %s", o.settings.String())
	}
	fmt.Fprintf(out, "\nmachine: %s\n", machine())

	broker, closeBroker, err := startBroker(ctx, o, out)
	if err != nil {
		return false, err
	}
	defer closeBroker()

	rcv, err := newReceiver(w)
	if err != nil {
		return false, err
	}
	defer rcv.close()
	dead, err := deadPort()
	if err != nil {
		return false, err
	}
	tmp, err := os.MkdirTemp("", "shovel-bench-")
	if err != nil {
		return false, err
	}
	if o.keepLogs {
		fmt.Fprintf(out, "config and logs in %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	good := w.goodMessages()
	var results []*result
	allOK := true
	for _, p := range o.partitions {
		topic := topicName(p)
		t0 := time.Now()
		n, err := preload(ctx, broker, topic, p, w)
		if err != nil {
			return false, err
		}
		fmt.Fprintf(out, "preload %s: %d messages, %.1f MB in %.1f s\n", topic, w.messages, float64(n)/1e6, time.Since(t0).Seconds())

		if !o.skipBare {
			res, err := runBare(ctx, o, broker, topic, p)
			if err != nil {
				return false, err
			}
			results = append(results, res)
		}

		group := fmt.Sprintf("shovel-bench-p%d-%d", p, time.Now().UnixNano())
		cfgPath := filepath.Join(tmp, fmt.Sprintf("shovel-p%d.yaml", p))
		if err := os.WriteFile(cfgPath, shovelConfig(broker, topic, group, rcv.addr(), dead, o.settings, o.workers), 0o600); err != nil {
			return false, err
		}
		rcv.reset()
		var res *result
		if o.inProcess {
			res, err = runInProcess(ctx, o, cfgPath, rcv, good)
		} else {
			args := []string{"route", "--config", cfgPath, "-K", broker, "-t", topic, "-g", group,
				"-H", "127.0.0.1", "-p", port(rcv.addr()), "--line-port", dead}
			if o.childProfile != "" {
				path := o.childProfile
				if len(o.partitions) > 1 {
					path += fmt.Sprintf(".p%d", p)
				}
				args = append(args, "--cpuprofile", path, "--memprofile", path+".allocs")
			}
			res, err = runShovel(ctx, o, args, filepath.Join(tmp, fmt.Sprintf("shovel-p%d", p)), rcv, good)
		}
		if err != nil {
			return false, err
		}
		res.partitions = p
		v := rcv.verdict()
		res.verdict = &v
		res.samples = int64(w.samples) * rcv.complete.Load()
		res.messages = int64(w.messages) // every message was routed: good ones delivered, bad ones rejected
		if !v.ok() {
			allOK = false
		}
		results = append(results, res)
	}
	report(out, o, results)
	return allOK, nil
}

func topicName(partitions int) string { return fmt.Sprintf("shovel-bench-p%d", partitions) }

// deadPort returns a loopback port nothing listens on, for shovel's
// plaintext fallback: a run that needs the fallback fails loudly.
func deadPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	p := port(ln.Addr().String())
	ln.Close()
	return p, nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// preload produces the workload into topic, message i to partition i%parts,
// and returns the bytes produced.
// startBroker starts the broker -broker names, with a topic per partition
// count, and returns its address.
func startBroker(ctx context.Context, o *options, out io.Writer) (string, func(), error) {
	if o.broker == "kafka" {
		dir, err := os.MkdirTemp("", "shovel-bench-kafka-")
		if err != nil {
			return "", nil, err
		}
		t0 := time.Now()
		c, err := kafkabroker.Launch(kafkabroker.Options{}, dir)
		cleanup := func() {
			if c != nil {
				c.Close()
			}
			os.RemoveAll(dir)
		}
		if err != nil {
			cleanup()
			return "", nil, fmt.Errorf("apache kafka: %w", err)
		}
		for _, p := range o.partitions {
			if err := c.CreateTopicContext(ctx, kafkabroker.Topic{Name: topicName(p), Partitions: int32(p), Replicas: 1}); err != nil {
				cleanup()
				return "", nil, fmt.Errorf("apache kafka: %w", err)
			}
		}
		fmt.Fprintf(out, "broker: Apache Kafka %s, one KRaft node at %s (started in %.1f s)\n", kafkabroker.Version, c.Addr(),
			time.Since(t0).Seconds())
		return c.Addr(), cleanup, nil
	}
	var seeds []kfake.Opt
	for _, p := range o.partitions {
		seeds = append(seeds, kfake.SeedTopics(int32(p), topicName(p)))
	}
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, seeds...)...)
	if err != nil {
		return "", nil, fmt.Errorf("kfake: %w", err)
	}
	fmt.Fprintf(out, "broker: kfake (in-process)\n")
	return cluster.ListenAddrs()[0], cluster.Close, nil
}

func preload(ctx context.Context, broker, topic string, parts int, w *workload) (int64, error) {
	return produceRange(ctx, broker, topic, parts, w, 0, w.messages, 0)
}

// produceRange produces the workload's messages [from, to) round-robin over
// the partitions, at most perSecond a second (0: as fast as it can), and
// returns their bytes once every one is acknowledged.
func produceRange(ctx context.Context, broker, topic string, parts int, w *workload, from, to, perSecond int) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return 0, fmt.Errorf("preload: client: %w", err)
	}
	defer cl.Close()
	var total int64
	errc := make(chan error, 1)
	var tick *time.Ticker
	if perSecond > 0 {
		tick = time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
	}
	for i := from; i < to; i++ {
		if tick != nil && (i-from)%max(1, perSecond/100) == 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		v := w.message(i, make([]byte, 0, 64+40*w.samples))
		total += int64(len(v))
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i % parts), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		})
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return 0, fmt.Errorf("preload: flush: %w", err)
	}
	select {
	case err := <-errc:
		return 0, fmt.Errorf("preload: produce: %w", err)
	default:
	}
	return total, nil
}

// shovelConfig is the YAML shovel runs on: the default routes and outputs,
// with the bench's extra librdkafka settings and quiet logs.
func shovelConfig(broker, topic, group, pickleAddr, deadPort string, settings kvFlag, workers int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "kafka:\n  brokers: %q\n  topics: [%q]\n  group: %q\n  start: earliest\n", broker, topic, group)
	if workers > 0 {
		fmt.Fprintf(&b, "  workers: %d\n", workers)
	}
	if len(settings) == 0 {
		b.WriteString("  settings: {}\n")
	} else {
		b.WriteString("  settings:\n")
		for _, kv := range settings {
			fmt.Fprintf(&b, "    %q: %q\n", kv.k, kv.v)
		}
	}
	fmt.Fprintf(&b, `routes:
  - match: {type: slice}
    decoder: slice
    outputs: [graphite]
outputs:
  graphite:
    kind: carbon-pickle
    address: %q
    fallback: graphite-line
  graphite-line:
    kind: carbon-plaintext
    address: "127.0.0.1:%s"
http:
  address: ""   # no status endpoint: it would listen on a fixed port
log:
  level: warn
shutdown_timeout: 10s
`, pickleAddr, deadPort)
	return b.Bytes()
}

// soloShovel is one `shovel route` child on the bench's config, for the
// modes that run a single one (-trickle, -outage).
type soloShovel struct {
	cmd *exec.Cmd
	log string // its log file
	tmp string
}

// startSoloShovel writes the config for topic (group name) and pickleAddr
// into a temporary directory, kept with -keep-logs, and starts the child.
func startSoloShovel(o *options, name, broker, topic, pickleAddr string, out io.Writer) (*soloShovel, error) {
	dead, err := deadPort()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return nil, err
	}
	s := &soloShovel{tmp: tmp, log: filepath.Join(tmp, "shovel.log")}
	if o.keepLogs {
		fmt.Fprintf(out, "config and log in %s\n", tmp)
	}
	cfgPath := filepath.Join(tmp, "shovel.yaml")
	if err := os.WriteFile(cfgPath, shovelConfig(broker, topic, name, pickleAddr, dead, o.settings, o.workers), 0o600); err != nil {
		s.stop(o)
		return nil, err
	}
	logf, err := os.Create(s.log)
	if err != nil {
		s.stop(o)
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	s.cmd = exec.Command(o.shovel, "route", "--config", cfgPath)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		s.stop(o)
		return nil, fmt.Errorf("start %s: %w", o.shovel, err)
	}
	return s, nil
}

// stop ends the child with SIGTERM, waits for it, and removes its files
// unless -keep-logs.
func (s *soloShovel) stop(o *options) {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_ = s.cmd.Wait()
	}
	if !o.keepLogs {
		os.RemoveAll(s.tmp)
	}
}

// runBare runs this binary's bare-consumer subcommand as a child and reads its report.
func runBare(ctx context.Context, o *options, broker, topic string, parts int) (*result, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"bare-consumer", "-brokers", broker, "-topic", topic,
		"-group", fmt.Sprintf("shovel-bench-bare-p%d-%d", parts, time.Now().UnixNano()),
		"-expect", strconv.Itoa(o.work.messages), "-idle", o.idle.String()}
	for _, kv := range o.settings {
		args = append(args, "-X", kv.k+"="+kv.v)
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now().UnixNano()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bare consumer: %w: %s", err, lastLines(stderr.String(), 5))
	}
	var br bareResult
	if err := json.Unmarshal(stdout.Bytes(), &br); err != nil {
		return nil, fmt.Errorf("bare consumer: bad report %q: %w", stdout.String(), err)
	}
	res := &result{partitions: parts, name: "bare consumer", messages: br.Messages,
		samples: br.Messages * int64(o.work.samples), startNs: start, firstNs: br.FirstNs,
		lastNs: br.LastNs, cpu: br.CPU, hwmKiB: br.HWMKiB}
	if br.Messages < int64(o.work.messages) {
		res.note = fmt.Sprintf("read only %d of %d messages", br.Messages, o.work.messages)
	}
	return res, nil
}

// runShovel runs o.instances shovel processes and waits until every good
// message has arrived at the listener (or nothing arrives for o.idle).
func runShovel(ctx context.Context, o *options, args []string, logBase string, rcv *receiver, good int) (*result, error) {
	type child struct {
		cmd    *exec.Cmd
		exited chan error
		log    string
	}
	var kids []*child
	defer func() { // on every path: no child outlives the bench
		for _, k := range kids {
			select {
			case <-k.exited:
			default:
				_ = k.cmd.Process.Kill()
				<-k.exited
			}
		}
	}()
	start := time.Now().UnixNano()
	for n := range o.instances {
		logPath := fmt.Sprintf("%s-%d.log", logBase, n)
		lf, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(o.shovel, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Stdout, cmd.Stderr = lf, lf
		if err := cmd.Start(); err != nil {
			lf.Close()
			return nil, fmt.Errorf("start %s: %w", o.shovel, err)
		}
		k := &child{cmd: cmd, exited: make(chan error, 1), log: logPath}
		go func() { k.exited <- cmd.Wait(); close(k.exited); lf.Close() }()
		kids = append(kids, k)
	}
	exitedEarly := make(chan struct{})
	for _, k := range kids {
		go func() {
			select {
			case <-k.exited:
				select {
				case <-exitedEarly:
				default:
					close(exitedEarly)
				}
			case <-ctx.Done():
			}
		}()
	}
	reason := waitDone(ctx, rcv, good, o.idle, exitedEarly)

	res := &result{name: fmt.Sprintf("shovel ×%d", o.instances), startNs: start,
		firstNs: rcv.first.Load(), lastNs: rcv.last.Load(), note: reason}
	for _, k := range kids {
		pid := k.cmd.Process.Pid
		if c, err := procCPU(pid); err == nil {
			res.cpu += c
		}
		if h, err := procHWM(pid); err == nil && h > res.hwmKiB {
			res.hwmKiB = h
		}
	}
	for _, k := range kids {
		_ = k.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, k := range kids {
		select {
		case err := <-k.exited:
			if err != nil {
				res.note = strings.TrimSpace(res.note + fmt.Sprintf("; shovel exited: %v: %s", err, lastLines(readFile(k.log), 3)))
			}
		case <-time.After(30 * time.Second):
			res.note = strings.TrimSpace(res.note + "; shovel did not stop within 30s of SIGTERM")
		}
	}
	if res.note != "" {
		for _, k := range kids {
			res.note += "\n  " + k.log + ": " + lastLines(readFile(k.log), 5)
		}
	}
	return res, nil
}

// waitDone waits until every good message has arrived, nothing has arrived
// for idle, stop is closed or ctx ends; it returns "" on success and why not otherwise.
func waitDone(ctx context.Context, rcv *receiver, good int, idle time.Duration, stop <-chan struct{}) string {
	lastTotal, lastChange := int64(-1), time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if rcv.complete.Load() >= int64(good) {
			return ""
		}
		if t := rcv.total.Load(); t != lastTotal {
			lastTotal, lastChange = t, time.Now()
		}
		if time.Since(lastChange) > idle {
			return fmt.Sprintf("gave up: no new sample for %v", idle)
		}
		select {
		case <-ctx.Done():
			return "interrupted"
		case <-stop:
			return "shovel exited before delivering everything"
		case <-tick.C:
		}
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func report(out io.Writer, o *options, results []*result) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "partitions\trun\tmessages\tsamples\tfirst→last s\tstart→last s\tmsgs/s\tsamples/s\tCPU s\tCPU s/M samples\tpeak RSS MiB\tof floor\t")
	floor := map[int]float64{}
	for _, r := range results {
		wall := r.wall()
		var mps, sps, cpm float64
		if wall > 0 {
			mps, sps = float64(r.messages)/wall, float64(r.samples)/wall
		}
		if r.samples > 0 {
			cpm = r.cpu / (float64(r.samples) / 1e6)
		}
		frac := "-"
		if r.verdict == nil {
			floor[r.partitions] = mps
		} else if f := floor[r.partitions]; f > 0 {
			frac = fmt.Sprintf("%.0f%%", 100*mps/f)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.2f\t%.2f\t%.0f\t%.0f\t%.2f\t%.3f\t%.0f\t%s\t\n",
			r.partitions, r.name, r.messages, r.samples, wall, r.sinceStart(),
			mps, sps, r.cpu, cpm, float64(r.hwmKiB)/1024, frac)
	}
	tw.Flush()
	fmt.Fprintln(out)
	for _, r := range results {
		if r.note != "" {
			fmt.Fprintf(out, "p%d %s: %s\n", r.partitions, r.name, r.note)
		}
		if v := r.verdict; v != nil {
			status := "OK"
			if !v.ok() {
				status = "FAILED"
			}
			fmt.Fprintf(out, "p%d verify %s: %d samples received; %d messages missing, %d partial, %d duplicated; %d wrong samples\n",
				r.partitions, status, v.received, v.missing, v.partial, v.duplicated, v.wrong)
			for _, e := range v.examples {
				fmt.Fprintf(out, "  %s\n", e)
			}
		}
	}
	if o.inProcess {
		fmt.Fprintln(out, "in-process run: its CPU and RSS are the whole bench process (kfake and the listener included)")
	}
}
