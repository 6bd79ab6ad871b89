//go:build !unix

package carbontest

import "testing"

// BlackHole needs a listen backlog that net.Listen does not offer; tests
// that use it are skipped here.
func BlackHole(t testing.TB) string {
	t.Skip("carbontest.BlackHole needs a unix listen backlog")
	return ""
}
