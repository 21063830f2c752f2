//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package smtp

import (
	"crypto/tls"
	"net"
	"syscall"
)

// socketReadable reports, without waiting and without consuming anything,
// whether the server has sent bytes the client has not read yet: one
// recv with MSG_PEEK and MSG_DONTWAIT on the socket (under TLS, on the
// socket below it: any record counts).
func socketReadable(conn net.Conn) bool {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	readable := false
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		readable = err == nil && n > 0
		return true // never wait
	})
	return readable
}
