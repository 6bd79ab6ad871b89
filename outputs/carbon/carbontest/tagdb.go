package carbontest

import (
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// tagDB answers as graphite-web's /tags/tagMultiSeries does for carbon's
// tag queue (carbon/database.py, TimeSeriesDatabase.tag): a multipart
// POST of "path" fields, one per series, answered 200. It records the
// series.
type tagDB struct {
	url string
	srv *http.Server

	mu     sync.Mutex
	series []string
}

func startTagDB(t testing.TB) *tagDB {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("carbontest: tag database: %v", err)
	}
	db := &tagDB{url: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tags/tagMultiSeries", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		db.mu.Lock()
		db.series = append(db.series, r.MultipartForm.Value["path"]...)
		db.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	})
	db.srv = &http.Server{Handler: mux}
	go func() { _ = db.srv.Serve(ln) }()
	t.Cleanup(func() { _ = db.srv.Close() })
	return db
}

// TagDB returns the series carbon has sent to its tag database so far,
// sorted, each once; nil unless Start had WithTagDB. Carbon sends a series
// when it creates its whisper file, from a thread that wakes about once a
// second: poll for what a test expects.
func (c *Carbon) TagDB() []string {
	if c.tagDB == nil {
		return nil
	}
	c.tagDB.mu.Lock()
	defer c.tagDB.mu.Unlock()
	out := slices.Clone(c.tagDB.series)
	slices.Sort(out)
	return slices.Compact(out)
}

// WhisperFiles lists every whisper file carbon has created so far, as
// paths that WhisperFile returns: a test can check that a node holds its
// series and no other.
func (c *Carbon) WhisperFiles() ([]string, error) {
	var files []string
	err := filepath.WalkDir(c.whisperDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".wsp") {
			files = append(files, p)
		}
		return err
	})
	slices.Sort(files)
	return files, err
}
