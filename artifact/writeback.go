package artifact

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how much written data may wait in the page cache
// before its write to disk is started.
const writebackChunk = 8 << 20

// writeback writes to f and starts the disk write of every finished chunk
// (sync_file_range, which does not wait), so the fsync that makes an
// artifact durable waits for the last chunk rather than the whole file
// (~0.5 s for a 200 MB image here). It changes when data reaches the disk,
// never what is written; the final Sync is still what makes it durable.
type writeback struct {
	f            *os.File
	fd           int
	off, started int64
}

func newWriteback(f *os.File) *writeback { return &writeback{f: f, fd: int(f.Fd())} }

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.started >= writebackChunk {
		// Advisory: if the kernel refuses, Sync does all the work.
		_ = unix.SyncFileRange(w.fd, w.started, w.off-w.started, unix.SYNC_FILE_RANGE_WRITE)
		w.started = w.off
	}
	return n, err
}
