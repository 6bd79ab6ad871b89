package metric

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestResultString: strings carved by Result.String keep their text while
// the Result goes on carving (past chunk boundaries, across Reset), which
// is what lets outputs hold them after the Result is reused.
func TestResultString(t *testing.T) {
	var r Result
	var got, want []string
	buf := make([]byte, 0, 64)
	for i := 0; i < 5000; i++ {
		buf = strconv.AppendInt(append(buf[:0], "voltha.olt."...), int64(i), 10)
		got = append(got, r.String(buf))
		want = append(want, string(buf))
		buf[0] = 'X' // the scratch buffer is reused: the string must not see it
		if i%100 == 0 {
			r.Reset()
		}
	}
	require.Equal(t, want, got)
	require.Equal(t, "", r.String(nil))
	big := bytes.Repeat([]byte("a"), stringChunk)
	require.Equal(t, string(big), r.String(big))
	allocs := testing.AllocsPerRun(1000, func() { _ = r.String([]byte("voltha.internal.abc.deferreds")) })
	require.Less(t, allocs, 0.01, "one chunk serves hundreds of paths")
}

// TestResultStringCopies: a copy of a Result (a decoder wrapping another,
// say) carves from the same place, so neither overwrites the other's strings.
func TestResultStringCopies(t *testing.T) {
	var out Result
	_ = out.String([]byte("first"))
	tmp := out
	a := tmp.String([]byte("voltha.a.cpu"))
	b := out.String([]byte("XXXXXXXXXXXX"))
	require.Equal(t, "voltha.a.cpu", a)
	require.Equal(t, "XXXXXXXXXXXX", b)
}

// TestResultBudget: Add, Charge and Reject charge the budget; the first
// call past it fails with the over-budget reason and adds nothing; Reset
// starts a new account under the same budget.
func TestResultBudget(t *testing.T) {
	r := Result{Budget: 3 * (SampleOverhead + 4)}
	for i := 0; i < 3; i++ {
		require.NoError(t, r.Add(Sample{Path: "a.bc", Value: float64(i)}))
	}
	require.NoError(t, r.Over())
	err := r.Add(Sample{Path: "d", Value: 9})
	require.Equal(t, ReasonOverBudget, ReasonOf(err))
	require.Len(t, r.Samples, 3, "the sample past the budget is not added")
	require.Error(t, r.Over())

	r.Reset()
	require.Zero(t, r.Spent())
	require.NoError(t, r.Charge(r.Budget))
	require.Equal(t, ReasonOverBudget, ReasonOf(r.Charge(1)))

	r.Reset()
	for i := 0; i < 3; i++ {
		r.Reject("x.y", ReasonNotANumber)
	}
	require.Greater(t, r.Spent(), 3*3)
	for r.Over() == nil {
		r.Reject("x.y", ReasonNotANumber)
	}
	require.LessOrEqual(t, len(r.Rejected)*(rejectionOverhead+3), r.Budget+rejectionOverhead+3)

	unbounded := Result{}
	for i := 0; i < 10000; i++ {
		require.NoError(t, unbounded.Add(Sample{Path: "p"}))
	}
	require.Equal(t, 10000*(SampleOverhead+1), unbounded.Spent())
}

// TestOutputLimits: a message's budget is Ratio times its value, key and
// headers, and never below Min; Cost counts what Add and Reject charge.
func TestOutputLimits(t *testing.T) {
	l := OutputLimits{Ratio: 16, Min: 64 << 10}
	require.Equal(t, 64<<10, l.Budget(0))
	require.Equal(t, 64<<10, l.Budget(4096))
	require.Equal(t, 16<<20, l.Budget(1<<20))
	require.Equal(t, int(^uint32(0)>>1), l.Budget(1<<40), "capped, never overflowing")
	require.Equal(t, OutputLimits{Ratio: DefaultOutputRatio, Min: DefaultOutputMin}, DefaultOutputLimits())

	msg := Message{Value: []byte("12345"), Key: []byte("k"), Headers: []Header{{Key: "ab", Value: []byte("cde")}, {Key: "f"}}}
	require.Equal(t, 5+1+2+3+1, msg.Size())

	var r Result
	require.NoError(t, r.Add(Sample{Path: "a.b"}))
	r.Reject("x", ReasonBadPath)
	r.Samples = append(r.Samples, Sample{Path: "uncharged"}) // a decoder that does not use Add
	require.Equal(t, r.Spent()+len("uncharged")+SampleOverhead, r.Cost())
}

func TestSkipReason(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		reason string
		ok     bool
	}{
		{"skip", Skip("device_event"), "device_event", true},
		{"wrapped skip", fmt.Errorf("voltha-event: %w", Skip("rpc_event")), "rpc_event", true},
		{"rejection", Rejectf(ReasonBadShape, "x"), "", false},
		{"other", errors.New("boom"), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, ok := SkipReason(tc.err)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.reason, reason)
			if ok {
				require.Equal(t, "error", ReasonOf(tc.err), "a skip is no rejection reason")
			}
		})
	}
}

// TestResultTrim: Trim empties a Result and lets it keep the room of a
// typical message, not of the largest it ever held.
func TestResultTrim(t *testing.T) {
	var r Result
	for range 1000 {
		require.NoError(t, r.Add(Sample{Path: "p"}))
		r.Reject("p", ReasonNotANumber)
	}
	r.Trim()
	require.Zero(t, r.Spent())
	require.Empty(t, r.Samples)
	require.GreaterOrEqual(t, cap(r.Samples), 1000, "a typical message's room is kept")
	require.GreaterOrEqual(t, cap(r.Rejected), 1000)

	for range 100_000 {
		require.NoError(t, r.Add(Sample{Path: "p"}))
		r.Reject("p", ReasonNotANumber)
		r.Repair("p", ReasonTagDuplicate)
	}
	ts := r.TagSet()
	for i := range 100_000 {
		ts.Add("k", strconv.Itoa(i))
	}
	_ = ts.Tags()
	r.Trim()
	require.Zero(t, cap(r.Samples)+cap(r.Rejected)+cap(r.Repaired)+cap(r.tags.tags)+cap(r.tags.repairs), "a large message's room is dropped")
}
