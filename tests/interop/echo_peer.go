// SPDX-License-Identifier: Apache-2.0
// The interop suite's Go crypto/tls backend: a line echo over TLS (standard library only).
//
// usage: echo_peer CERT_CHAIN KEY VERSION   (VERSION: 1.2 or 1.3, pinned as min and max)
//
// Same protocol as echo_peer.py: prints "PORT <n>" once it listens on 127.0.0.1, echoes
// every complete line, and on a line "CLOSE" ends the session itself (close_notify, then
// FIN) after echoing what came before it; otherwise it echoes until the client's end and
// then closes too. After each session one line on stdout:
// "SESSION echoed=<bytes> close_notify=<1|0> closed_by=<peer|client>".
package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

var terminator = []byte("CLOSE\n")
var stdoutMu sync.Mutex

func report(format string, args ...interface{}) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	fmt.Printf(format+"\n", args...)
}

// terminatorAt is where the line "CLOSE" starts in whole lines, or -1.
func terminatorAt(lines []byte) int {
	if bytes.HasPrefix(lines, terminator) {
		return 0
	}
	at := bytes.Index(lines, append([]byte("\n"), terminator...))
	if at < 0 {
		return -1
	}
	return at + 1
}

// eofConn notes whether TCP itself ended: crypto/tls reports both a close_notify and a bare
// FIN as io.EOF, but reads no further than the record it needs, so after a close_notify
// the connection has not yet returned EOF.
type eofConn struct {
	net.Conn
	sawEOF bool
}

func (c *eofConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if errors.Is(err, io.EOF) {
		c.sawEOF = true
	}
	return n, err
}

func serve(raw *eofConn, conn *tls.Conn) {
	echoed, closeNotify, closedBy := 0, 0, "client"
	defer func() {
		report("SESSION echoed=%d close_notify=%d closed_by=%s", echoed, closeNotify, closedBy)
	}()
	defer conn.Close() // sends close_notify, then FIN
	var pending []byte
	buf := make([]byte, 16384)
	for {
		n, err := conn.Read(buf)
		pending = append(pending, buf[:n]...)
		cut := bytes.LastIndexByte(pending, '\n') + 1
		lines := pending[:cut]
		if end := terminatorAt(lines); end >= 0 {
			if _, werr := conn.Write(lines[:end]); werr == nil {
				echoed += end
			}
			closedBy = "peer"
			return
		}
		if _, werr := conn.Write(lines); werr != nil {
			report("ERROR write: %v", werr)
			return
		}
		echoed += len(lines)
		pending = append([]byte(nil), pending[cut:]...)
		if err != nil {
			if errors.Is(err, io.EOF) && !raw.sawEOF {
				closeNotify = 1
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				report("ERROR read: %v", err)
			}
			if len(pending) > 0 {
				if _, werr := conn.Write(pending); werr == nil {
					echoed += len(pending)
				}
			}
			return
		}
	}
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: echo_peer CERT_CHAIN KEY VERSION")
		os.Exit(2)
	}
	cert, err := tls.LoadX509KeyPair(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loading the certificate:", err)
		os.Exit(1)
	}
	var version uint16 = tls.VersionTLS12
	if os.Args[3] == "1.3" {
		version = tls.VersionTLS13
	}
	config := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version,
		MaxVersion: version}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listening:", err)
		os.Exit(1)
	}
	report("PORT %d", listener.Addr().(*net.TCPAddr).Port)
	for {
		conn, err := listener.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "accepting:", err)
			os.Exit(1)
		}
		raw := &eofConn{Conn: conn}
		go serve(raw, tls.Server(raw, config))
	}
}
