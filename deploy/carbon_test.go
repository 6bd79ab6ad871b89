package deploy

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCarbonScript runs deploy/carbon.sh as `make carbon` does: a private
// carbon-cache starts on the ports it prints, writes what it receives into
// its own directory, and stops.
func TestCarbonScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real carbon-cache")
	}
	if _, err := exec.LookPath("carbon-cache"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("carbon-cache is not installed (apt-get install graphite-carbon python3-whisper)")
		}
		t.Skip("carbon-cache is not installed")
	}
	dir := t.TempDir()
	out, err := exec.Command("./carbon.sh", "start", dir).CombinedOutput()
	t.Cleanup(func() { _ = exec.Command("./carbon.sh", "stop", dir).Run() })
	require.NoError(t, err, "%s", out)
	m := regexp.MustCompile(`plaintext: 127\.0\.0\.1:(\d+)`).FindSubmatch(out)
	require.NotNil(t, m, "%s", out)
	require.Regexp(t, `pickle:    127\.0\.0\.1:\d+`, string(out))

	c, err := net.Dial("tcp", "127.0.0.1:"+string(m[1]))
	require.NoError(t, err)
	ts := time.Now().Unix()
	_, err = c.Write([]byte("script.check.value 42 " + strconv.FormatInt(ts, 10) + "\n"))
	require.NoError(t, err)
	require.NoError(t, c.Close())
	wsp := filepath.Join(dir, "whisper", "script", "check", "value.wsp")
	require.Eventually(t, func() bool {
		got, err := exec.Command("whisper-fetch", "--from="+strconv.FormatInt(ts-60, 10), wsp).Output()
		return err == nil && strings.Contains(string(got), "42.0")
	}, 30*time.Second, 200*time.Millisecond, "the sample lands in the script's own whisper directory")

	out, err = exec.Command("./carbon.sh", "stop", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "carbon-cache stopped")
	out, err = exec.Command("./carbon.sh", "status", dir).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "not running")
}
