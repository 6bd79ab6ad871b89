package limitedfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(strings.Repeat("a", size)), 0o600))
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(write("target", 3), link))

	tests := []struct {
		name, path string
		want       string
		err        error
		text       string
	}{
		{"at the limit", write("exact", 16), strings.Repeat("a", 16), nil, ""},
		{"empty", write("empty", 0), "", nil, ""},
		{"symlink to a regular file", link, "aaa", nil, ""},
		{"over the limit", write("big", 17), "", ErrTooLarge, "big: too large: larger than the limit of 16 bytes"},
		{"device that never ends", "/dev/zero", "", ErrNotRegular, "/dev/zero: not a regular file (it is a device, which could block or never end)"},
		{"fifo nobody writes", fifo, "", ErrNotRegular, "fifo: not a regular file (it is a named pipe, which could block or never end)"},
		{"directory", dir, "", ErrNotRegular, "it is a directory"},
		{"missing", filepath.Join(dir, "nope"), "", os.ErrNotExist, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			var (
				got []byte
				err error
			)
			go func() {
				defer close(done)
				got, err = Read(tt.path, 16)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Read blocked")
			}
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				require.ErrorContains(t, err, tt.text)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
		})
	}
}

func TestSize(t *testing.T) {
	require.Equal(t, "4 MiB", Size(4<<20))
	require.Equal(t, "64 KiB", Size(64<<10))
	require.Equal(t, "1000 bytes", Size(1000))
}
