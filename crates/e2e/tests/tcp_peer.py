"""The kernel's side of the TCP interop tests (tests/tcp_kernel.rs), run in the TAP host's
namespace. The stream is the pattern of e2e::tap_engine::pattern_byte.

  tcp_peer.py echo-server PORT          accept one connection, echo it until EOF, close
  tcp_peer.py client HOST PORT BYTES    send BYTES of the pattern, check the echo, close
  tcp_peer.py hold-server PORT          accept one, print 'accepted'; close at a line on stdin
  tcp_peer.py read-server PORT [BYTES]  accept one, send BYTES, read to EOF or reset and say which
                                        (and 'got N' after each read)
  tcp_peer.py reset-server PORT         accept one, send 'hello', reset (SO_LINGER 0)
"""
import socket, sys, threading

P = 65521
BLOCK = bytes(((j * j * 7 + j // 3 + 13) % 256) for j in range(P))
TRIPLE = BLOCK * 3


def expect(offset, data):
    start = offset % P
    n = len(data)
    while n:
        take = min(n, 2 * P)
        if data[len(data) - n:len(data) - n + take] != TRIPLE[start:start + take]:
            return False
        start = (start + take) % P
        n -= take
    return True


def send_pattern(c, size):
    sent = 0
    while sent < size:
        n = min(P, size - sent)
        c.sendall(BLOCK[:n])
        sent += n


def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port))
    s.listen(1)
    print('listening', flush=True)
    c, _ = s.accept()
    return c


def main():
    mode = sys.argv[1]
    if mode == 'echo-server':
        c = listen(int(sys.argv[2]))
        total = 0
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            c.sendall(d)
            total += len(d)
        c.shutdown(socket.SHUT_WR)
        c.close()
        print('echoed', total, flush=True)
    elif mode == 'client':
        host, port, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        c = socket.create_connection((host, port))

        def send():
            send_pattern(c, size)
            c.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=send)
        t.start()
        got, ok = 0, True
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            ok = ok and expect(got, d)
            got += len(d)
        t.join()
        c.close()
        print('ok' if ok and got == size else 'bad', got, flush=True)
    elif mode == 'hold-server':
        c = listen(int(sys.argv[2]))
        print('accepted', flush=True)
        sys.stdin.readline()
        c.close()
        print('closed', flush=True)
        sys.stdin.readline()
    elif mode == 'read-server':
        c = listen(int(sys.argv[2]))
        if len(sys.argv) > 3:
            send_pattern(c, int(sys.argv[3]))
        print('accepted', flush=True)
        total = 0
        try:
            while True:
                d = c.recv(1 << 16)
                if not d:
                    print('eof', total, flush=True)
                    break
                total += len(d)
                print('got', total, flush=True)
        except ConnectionResetError:
            print('reset', total, flush=True)
        c.close()
    elif mode == 'reset-server':
        import struct
        c = listen(int(sys.argv[2]))
        c.sendall(b'hello')
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()
        print('reset sent', flush=True)


main()
