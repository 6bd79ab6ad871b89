//go:build linux

package main

// Fault tests that need shovel as a process of its own: SIGKILL leaves no
// chance to flush or commit, and SIGTERM goes through main's signal
// handling.
//
// The process is this test binary, started again with runMainEnv set:
// TestMain then runs main() instead of the tests. That needs no `go build`
// (which, under `go test -race`, would compile confluent-kafka-go and its
// bundled librdkafka once more without -race: about a minute on CI, and a
// Go toolchain at test time), and the process runs exactly the code under
// test, race detector included.

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shovel-metrics/shovel/outputs/carbon/carbontest"
)

const runMainEnv = "SHOVEL_TEST_RUN_MAIN"

// TestMain runs main() in a process started by startProcess, and the tests
// otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	code := m.Run()
	stopSharedKafka()
	os.Exit(code)
}

// shovelProc is `shovel <args>` running as a child process.
type shovelProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	err  error // cmd.Wait's, set before done is closed
}

func startProcess(t *testing.T, args ...string) *shovelProc {
	t.Helper()
	return startProcessEnv(t, nil, args...)
}

// startProcessEnv is startProcess with extra environment variables.
func startProcessEnv(t *testing.T, env []string, args ...string) *shovelProc {
	t.Helper()
	p := &shovelProc{logs: &syncBuffer{}, done: make(chan struct{})}
	if len(args) > 0 && args[0] == "route" && !slices.Contains(args, "--http") {
		// Status endpoints on a free port: the default one is fixed.
		args = append(args, "--http", "127.0.0.1:0")
	}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(append(os.Environ(), runMainEnv+"=1"), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	// Killed with the test binary, should that die without cleaning up.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("shovel process %d log:\n%s", p.cmd.Process.Pid, p.logs)
		}
	})
	return p
}

// running reports whether the process is still running.
func (p *shovelProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// eventually is require.Eventually that gives up at once when one of the
// processes has exited.
func eventually(t *testing.T, cond func() bool, timeout time.Duration, msg string, procs ...*shovelProc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		for _, p := range procs {
			require.True(t, p.running(), "%s: shovel exited early: %v", msg, p.err)
		}
		require.True(t, time.Now().Before(deadline), "%s: not within %v", msg, timeout)
		time.Sleep(5 * time.Millisecond)
	}
}

// signal sends sig and waits for the process to exit, returning how long
// that took and the exit code (-1 when killed by a signal).
func (p *shovelProc) signal(t *testing.T, sig syscall.Signal) (time.Duration, int) {
	t.Helper()
	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("shovel did not exit within 90s of %v", sig)
	}
	return time.Since(start), p.cmd.ProcessState.ExitCode()
}

// requireCommittedDelivered checks, for messages produced round-robin by
// produceKPIs or produceSteadily, that every message below a committed
// offset has all its samples in got: shovel commits only what Carbon has.
func requireCommittedDelivered(t *testing.T, committed map[int32]int64, partitions int32, kpis []kpi, got []carbontest.Sample) {
	t.Helper()
	have := make(map[carbontest.Sample]bool, len(got))
	for _, s := range got {
		have[s] = true
	}
	for p, off := range committed {
		for o := int64(0); o < off; o++ {
			i := o*int64(partitions) + int64(p)
			require.Less(t, i, int64(len(kpis)), "partition %d committed at %d, past what was produced", p, off)
			for _, s := range kpis[i].want {
				require.True(t, have[s], "partition %d is committed at %d, but message %d (offset %d) is not in Carbon: %+v", p, off, i, o, s)
			}
		}
	}
}

func TestProcessSIGKILLResumesFromCommittedOffsets(t *testing.T) {
	skipShort(t)
	const topic, group = "kpis.sigkill", "it-sigkill"
	const parts = 2
	b := startBroker(t, parts, topic, false)
	pickle := carbontest.ListenPickle(t)
	// A short session: the restarted process need not wait 30 s for the
	// group to give up on the killed one.
	cfg := writeConfig(t, pickleConfig(b.Addr, topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t),
		"{session.timeout.ms: 6000, heartbeat.interval.ms: 500}"))
	kpis := sliceKPIs("sigkill", 4000, recentTS())
	want, produced := b.produceSteadily(t, topic, parts, kpis, 100, 100*time.Millisecond)

	sh := startProcess(t, "route", "--config", cfg)
	eventually(t, func() bool { return pickle.Len() >= len(want)/4 }, 90*time.Second, "a quarter delivered", sh)
	_, code := sh.signal(t, syscall.SIGKILL)
	require.Equal(t, -1, code, "killed by the signal")
	atKill := pickle.Samples()
	committed := b.Committed(t, group, topic)
	requireCommittedDelivered(t, committed, parts, kpis, atKill)

	sh = startProcess(t, "route", "--config", cfg)
	produced()
	requireAllArrive(t, want, 90*time.Second, pickle)
	_, code = sh.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	require.EqualValues(t, len(kpis), b.CommittedTotal(t, group, topic))

	var committedMsgs int64
	for _, off := range committed {
		committedMsgs += off
	}
	dups := pickle.Len() - len(want)
	t.Logf("at SIGKILL: %d samples in Carbon (%d messages' worth), %d messages committed; after the restart: %d duplicate samples (%d messages' worth)",
		len(atKill), len(atKill)/6, committedMsgs, dups, dups/6)
}

func TestProcessSIGTERMUnderLoad(t *testing.T) {
	skipShort(t)
	const topic, group = "kpis.sigterm", "it-sigterm"
	const parts = 3
	const shutdownTimeout = 5 * time.Second
	b := startBroker(t, parts, topic, false)
	pickle := carbontest.ListenPickle(t)
	cfg := writeConfig(t, strings.Replace(pickleConfig(b.Addr, topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t), ""),
		"shutdown_timeout: 20s", "shutdown_timeout: "+shutdownTimeout.String(), 1))
	kpis := sliceKPIs("sigterm", 30000, time.Now().Add(-10*time.Hour).Unix())
	want := b.produceKPIs(t, topic, parts, kpis)

	sh := startProcess(t, "route", "--config", cfg)
	eventually(t, func() bool { return pickle.Len() >= 5000 }, 90*time.Second, "delivery under way", sh)
	took, code := sh.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code, "a clean shutdown")
	require.Less(t, took, shutdownTimeout+10*time.Second, "shutdown within shutdown_timeout (and librdkafka's close)")
	atStop := pickle.Samples()
	committed := b.Committed(t, group, topic)
	requireCommittedDelivered(t, committed, parts, kpis, atStop)
	var committedMsgs int64
	for _, off := range committed {
		committedMsgs += off
	}
	require.Positive(t, committedMsgs, "what was delivered was committed")

	sh = startProcess(t, "route", "--config", cfg)
	requireAllArrive(t, want, 120*time.Second, pickle)
	_, code = sh.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	require.EqualValues(t, len(kpis), b.CommittedTotal(t, group, topic))
	t.Logf("SIGTERM under load: exited in %v (shutdown_timeout %v) with %d samples in Carbon (%d messages' worth) and %d of %d messages committed; %d duplicates after the restart",
		took.Round(time.Millisecond), shutdownTimeout, len(atStop), len(atStop)/6, committedMsgs, len(kpis), pickle.Len()-len(want))
}

func TestProcessGroupMemberKilled(t *testing.T) {
	skipShort(t)
	const topic, group = "kpis.pair-kill", "it-pair-kill"
	const parts = 4
	b := startBroker(t, parts, topic, false)
	pickle := carbontest.ListenPickle(t)
	// A short session: the group notices the killed member after 6 s.
	cfg := writeConfig(t, pickleConfig(b.Addr, topic, group, pickle.Addr(), "127.0.0.1:"+deadPort(t),
		"{session.timeout.ms: 6000, heartbeat.interval.ms: 500}"))
	kpis := sliceKPIs("pairkill", 3000, recentTS())
	want, produced := b.produceSteadily(t, topic, parts, kpis, 40, 100*time.Millisecond)
	first := startProcess(t, "route", "--config", cfg)
	second := startProcess(t, "route", "--config", cfg)
	eventually(t, func() bool {
		return strings.Contains(first.logs.String(), "partitions assigned") && strings.Contains(second.logs.String(), "partitions assigned") &&
			pickle.Len() > 0
	}, 90*time.Second, "both members have partitions", first, second)
	_, code := first.signal(t, syscall.SIGKILL)
	require.Equal(t, -1, code)
	produced()
	requireAllArrive(t, want, 120*time.Second, pickle)
	_, code = second.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	require.EqualValues(t, len(kpis), b.CommittedTotal(t, group, topic))
	t.Logf("%d samples received for %d distinct", pickle.Len(), len(want))
}
