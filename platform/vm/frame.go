package vm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The exec protocol. One byte stream carries every command's streams as
// frames: type (1 byte), channel (4 bytes), length (4 bytes), payload.
// Between the supervisor and the guest agent it runs over the virtio-serial
// port, one channel per command; between a kiln process and the supervisor
// it runs over one Unix socket connection per command, on channel 0.
const (
	// host → guest
	frameHello = 'H' // supervisor: a new host side; the agent answers H and ends every session
	frameOpen  = 'O' // payload: the command, JSON openRequest
	frameStdin = 'I' // payload: bytes; empty: end of input
	frameKill  = 'K' // kill the command's process group
	// guest → host
	frameStdout = '1'
	frameStderr = '2'
	frameExit   = 'X' // payload: decimal exit status
	frameError  = 'E' // payload: why the command did not run (supervisor: agent not ready, …)
)

// maxPayload bounds a frame, so a corrupt stream cannot ask for gigabytes.
const maxPayload = 1 << 20

type frame struct {
	typ     byte
	ch      uint32
	payload []byte
}

// openRequest is what frameOpen carries.
type openRequest struct {
	Argv []string `json:"argv"`
}

func readFrame(r io.Reader) (frame, error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[5:])
	if n > maxPayload {
		return frame{}, fmt.Errorf("frame of %d bytes: the stream is out of step", n)
	}
	f := frame{typ: h[0], ch: binary.BigEndian.Uint32(h[1:5])}
	if n > 0 {
		f.payload = make([]byte, n)
		if _, err := io.ReadFull(r, f.payload); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return frame{}, err
		}
	}
	return f, nil
}

// frameWriter serialises frames from several goroutines onto one stream.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (fw *frameWriter) write(typ byte, ch uint32, payload []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for {
		n := min(len(payload), maxPayload)
		b := make([]byte, 9+n)
		b[0] = typ
		binary.BigEndian.PutUint32(b[1:5], ch)
		binary.BigEndian.PutUint32(b[5:9], uint32(n))
		copy(b[9:], payload[:n])
		if _, err := fw.w.Write(b); err != nil {
			return err
		}
		payload = payload[n:]
		if len(payload) == 0 {
			return nil
		}
	}
}

// streamWriter is an io.Writer that sends what is written as frames.
type streamWriter struct {
	fw  *frameWriter
	typ byte
	ch  uint32
}

func (s streamWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if err := s.fw.write(s.typ, s.ch, b); err != nil {
		return 0, err
	}
	return len(b), nil
}
