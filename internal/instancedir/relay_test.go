package instancedir

import (
	"io"
	"net"
	"testing"
)

// TestSplice: bytes cross both ways, and one side's end of input reaches
// the other while it can still answer (a half-close, not a close).
func TestSplice(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server reads everything, then answers: it needs the half-close.
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		_, _ = c.Write(append([]byte("got "), b...))
	}()
	up, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	relayLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer relayLn.Close()
	go func() {
		c, err := relayLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		Splice(c, up)
	}()
	client, err := net.Dial("tcp", relayLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = client.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(client)
	if err != nil || string(b) != "got hello" {
		t.Errorf("through the relay: %q, %v", b, err)
	}
}
