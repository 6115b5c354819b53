package vm

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// mux is the supervisor's side of the exec protocol: it holds QEMU's end of
// the virtio-serial port and gives each kiln process's command a channel on
// it.
type mux struct {
	agent io.ReadWriter
	fw    *frameWriter
	log   *slog.Logger

	mu     sync.Mutex
	ready  bool
	next   uint32
	chans  map[uint32]*frameWriter // nil: a command of the supervisor's own
	gone   error                   // set when the port is closed
	ready1 chan struct{}
}

func newMux(agent io.ReadWriter, log *slog.Logger) *mux {
	return &mux{agent: agent, fw: &frameWriter{w: agent}, log: log, chans: map[uint32]*frameWriter{}, ready1: make(chan struct{})}
}

// greet says hello until the agent answers, so that an agent that was
// already running drops what an earlier supervisor left.
func (m *mux) greet(stop <-chan struct{}) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	nonce := []byte(hex.EncodeToString(b))
	for {
		if err := m.fw.write(frameHello, 0, nonce); err != nil {
			return
		}
		select {
		case <-m.ready1:
			return
		case <-stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// run reads the agent's frames until the port closes.
func (m *mux) run() {
	for {
		f, err := readFrame(m.agent)
		if err != nil {
			m.mu.Lock()
			m.gone = errors.New("the virtual machine's agent port closed")
			for ch, c := range m.chans {
				if c != nil {
					_ = c.write(frameError, 0, []byte("the virtual machine ended while the command ran"))
				}
				delete(m.chans, ch)
			}
			m.mu.Unlock()
			return
		}
		switch f.typ {
		case frameHello:
			m.mu.Lock()
			if !m.ready {
				m.ready = true
				close(m.ready1)
				m.log.Info("guest agent answered")
			}
			if len(f.payload) == 0 {
				// The agent (re)started: whatever ran is gone.
				for ch, c := range m.chans {
					if c != nil {
						_ = c.write(frameError, 0, []byte("the guest agent restarted while the command ran"))
					}
					delete(m.chans, ch)
				}
			}
			m.mu.Unlock()
		case frameStdout, frameStderr, frameExit, frameError:
			m.mu.Lock()
			c, ok := m.chans[f.ch]
			if f.typ == frameExit || f.typ == frameError {
				delete(m.chans, f.ch)
			}
			m.mu.Unlock()
			if ok && c != nil {
				if err := c.write(f.typ, 0, f.payload); err != nil && f.typ != frameExit && f.typ != frameError {
					m.kill(f.ch)
				}
			}
		}
	}
}

// open starts argv on a new channel whose output goes to out (nil: thrown
// away).
func (m *mux) open(argv []string, out *frameWriter) (uint32, error) {
	req, err := json.Marshal(openRequest{Argv: argv})
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	if m.gone != nil {
		m.mu.Unlock()
		return 0, m.gone
	}
	if !m.ready {
		m.mu.Unlock()
		return 0, errNotReady
	}
	m.next++
	ch := m.next
	m.chans[ch] = out
	m.mu.Unlock()
	if err := m.fw.write(frameOpen, ch, req); err != nil {
		m.drop(ch)
		return 0, err
	}
	return ch, nil
}

var errNotReady = errors.New("the guest agent has not answered yet")

func (m *mux) drop(ch uint32) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.chans[ch]
	delete(m.chans, ch)
	return ok
}

// kill ends a channel's command if it still runs.
func (m *mux) kill(ch uint32) {
	if m.drop(ch) {
		_ = m.fw.write(frameKill, ch, nil)
	}
}

// serveClient runs one kiln process's command: the connection's first
// frame opens it, then stdin frames follow; output and the exit status go
// back. A connection closed before the exit kills the command.
func (m *mux) serveClient(c net.Conn) {
	defer c.Close()
	out := &frameWriter{w: c}
	f, err := readFrame(c)
	if err != nil || f.typ != frameOpen {
		return
	}
	var req openRequest
	if err := json.Unmarshal(f.payload, &req); err != nil || len(req.Argv) == 0 {
		_ = out.write(frameError, 0, []byte("bad command request"))
		return
	}
	ch, err := m.open(req.Argv, out)
	if err != nil {
		_ = out.write(frameError, 0, []byte(err.Error()))
		return
	}
	for {
		f, err := readFrame(c)
		if err != nil {
			m.kill(ch)
			return
		}
		if f.typ == frameStdin {
			m.mu.Lock()
			_, live := m.chans[ch]
			m.mu.Unlock()
			if live {
				_ = m.fw.write(frameStdin, ch, f.payload)
			}
		}
	}
}
