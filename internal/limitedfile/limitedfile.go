// Package limitedfile reads small files that shovel is told to read (its
// config, secret files) without trusting them to be small or to end: a
// device such as /dev/zero never ends, a FIFO may never be written to, and
// a huge file would be held in memory whole.
package limitedfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrTooLarge is wrapped by Read's error when the file exceeds the limit.
var ErrTooLarge = errors.New("too large")

// ErrNotRegular is wrapped by Read's error when path is not a regular file
// (after following symlinks, so Kubernetes' secret links are fine).
var ErrNotRegular = errors.New("not a regular file")

// Read returns the content of the regular file at path, or an error if it
// is anything else or longer than limit bytes. It checks the file's type
// before opening it, so that opening a FIFO cannot block, and again on the
// open file, in case the path changed in between.
func Read(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := regular(path, st); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := regular(path, st); err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, tooLarge(path, limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit { // it grew after Stat
		return nil, tooLarge(path, limit)
	}
	return data, nil
}

func regular(path string, st fs.FileInfo) error {
	if st.Mode().IsRegular() {
		return nil
	}
	kind := "a special file"
	switch t := st.Mode().Type(); {
	case t&fs.ModeDir != 0:
		kind = "a directory"
	case t&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case t&fs.ModeSocket != 0:
		kind = "a socket"
	case t&fs.ModeDevice != 0:
		kind = "a device"
	}
	return fmt.Errorf("%s: %w (it is %s, which could block or never end)", path, ErrNotRegular, kind)
}

func tooLarge(path string, limit int64) error {
	return fmt.Errorf("%s: %w: larger than the limit of %s", path, ErrTooLarge, Size(limit))
}

// Size writes a byte count as the limits are documented: "4 MiB", "64 KiB".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
