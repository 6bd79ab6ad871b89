package main

import (
	"strconv"
	"time"
)

// workload is the set of messages the bench preloads and the samples it
// expects back. Everything is a pure function of the message index, so
// the receiver checks each sample exactly, without keeping what was sent:
//
//   - message i has ts = base + i (so the sample's timestamp names its message),
//   - sample j of a message is "voltha.bench.dev<i%100>.obj<j%objects>.kpi<j>",
//   - its value is value(i, j): an integer or a 3-decimal float.
type workload struct {
	messages int     // messages produced
	samples  int     // samples per message
	objects  int     // objects (path prefixes) per message
	bad      float64 // share of messages no route can take (0..1)
	base     int64   // ts of message 0, in seconds
}

// recentBase is a base that puts every timestamp in the past minutes to
// days, inside shovel's timestamp window (timestamps.max_age, a year by default).
func recentBase(messages int) int64 { return time.Now().Unix() - int64(messages) - 60 }

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// isBad says whether message i is one the router must reject whole.
func (w *workload) isBad(i int) bool {
	return w.bad > 0 && float64(splitmix(uint64(i)^0xbadbad)%1_000_000) < w.bad*1_000_000
}

// rawValue is sample (i, j)'s value as an integer n, or as k thousandths.
func rawValue(i, j int) (n int64, thousandths bool) {
	h := splitmix(uint64(i)*1_000_003 + uint64(j))
	if h&1 == 0 {
		return int64(h>>8) % 1_000_000, false
	}
	return int64(h>>8) % 100_000_000, true
}

// value returns sample (i, j)'s value. A 3-decimal float is k/1000: both k
// and 1000 are exact doubles, so the division is the correctly rounded
// double of the decimal, which is what any correct JSON number parser
// returns for the text appendValue writes.
func value(i, j int) float64 {
	n, th := rawValue(i, j)
	if th {
		return float64(n) / 1000
	}
	return float64(n)
}

// appendValue appends sample (i, j)'s value as JSON text.
func appendValue(dst []byte, i, j int) []byte {
	n, th := rawValue(i, j)
	if !th {
		return strconv.AppendInt(dst, n, 10)
	}
	dst = strconv.AppendInt(dst, n/1000, 10)
	f := n % 1000
	return append(dst, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}

// message appends message i's JSON to dst.
func (w *workload) message(i int, dst []byte) []byte {
	start := len(dst)
	typ := "slice"
	bad := w.isBad(i)
	if bad && i%2 == 1 {
		typ = "other" // matches no route: rejected as no_route
	}
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","ts":`...)
	dst = strconv.AppendInt(dst, w.base+int64(i), 10)
	dst = append(dst, `,"data":{`...)
	firstObj := true
	for o := 0; o < w.objects && o < w.samples; o++ {
		if !firstObj {
			dst = append(dst, ',')
		}
		firstObj = false
		dst = append(dst, `"voltha.bench.dev`...)
		dst = appendDev(dst, i%100)
		dst = append(dst, ".obj"...)
		dst = strconv.AppendInt(dst, int64(o), 10)
		dst = append(dst, `":{`...)
		for j := o; j < w.samples; j += w.objects {
			if j != o {
				dst = append(dst, ',')
			}
			dst = append(dst, `"kpi`...)
			dst = strconv.AppendInt(dst, int64(j), 10)
			dst = append(dst, `":`...)
			dst = appendValue(dst, i, j)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, "}}"...)
	if bad && i%2 == 0 {
		dst = dst[:start+(len(dst)-start)/2] // truncated: invalid_json
	}
	return dst
}

func appendDev(dst []byte, d int) []byte {
	return append(dst, byte('0'+d/100), byte('0'+d/10%10), byte('0'+d%10))
}

// goodMessages is the number of messages whose samples must all arrive.
func (w *workload) goodMessages() int {
	n := 0
	for i := 0; i < w.messages; i++ {
		if !w.isBad(i) {
			n++
		}
	}
	return n
}

// check returns the message index of a received sample, or -1 and why the
// sample is not one that was sent.
func (w *workload) check(path []byte, ts, val float64) (int, string) {
	i := int(ts - float64(w.base))
	if float64(int(ts)) != ts || i < 0 || i >= w.messages {
		return -1, "timestamp names no message"
	}
	if w.isBad(i) {
		return -1, "sample from a message that should have been rejected"
	}
	const prefix = "voltha.bench.dev"
	p := path
	if len(p) < len(prefix)+3 || string(p[:len(prefix)]) != prefix {
		return -1, "unknown path"
	}
	p = p[len(prefix):]
	dev, ok := atoiPrefix(p[:3])
	p = p[3:]
	if !ok || dev != i%100 {
		return -1, "path has the wrong device for its timestamp"
	}
	o, p, ok := field(p, ".obj")
	if !ok {
		return -1, "unknown path"
	}
	j, p, ok := field(p, ".kpi")
	if !ok || len(p) != 0 || j >= w.samples || o != j%w.objects {
		return -1, "unknown path"
	}
	if value(i, j) != val {
		return -1, "wrong value"
	}
	return i, ""
}

// field parses a name followed by decimal digits at the start of p.
func field(p []byte, name string) (int, []byte, bool) {
	if len(p) <= len(name) || string(p[:len(name)]) != name {
		return 0, p, false
	}
	p = p[len(name):]
	k := 0
	for k < len(p) && p[k] >= '0' && p[k] <= '9' {
		k++
	}
	n, ok := atoiPrefix(p[:k])
	return n, p[k:], ok
}

func atoiPrefix(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
