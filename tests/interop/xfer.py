#!/usr/bin/env python3
"""One TCP transfer for the interop traffic cases (lib.sh: mki_transfer).

  xfer.py recv --bind ADDR --port N --ready FILE --timeout S
      accepts one connection, reads to EOF, closes, prints
      "<sha256 hex> <bytes> <seconds> <longest gap between reads, s>"
  xfer.py send --src ADDR --dst ADDR --port N --file F [--rate BYTES/S] --timeout S
      sends F (paced to RATE if given), half-closes, waits until the
      receiver closed (so everything arrived), prints
      "<sha256 hex> <bytes> <seconds>"

Exit 0 on success, 1 on a timeout or a socket error (said on stderr).
Everything is bounded by --timeout: a tunnel that stalls fails the case.
"""
import argparse
import hashlib
import socket
import sys
import time

CHUNK = 64 * 1024


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def left(deadline):
    rest = deadline - time.monotonic()
    if rest <= 0:
        raise TimeoutError("deadline passed")
    return rest


def recv(args):
    deadline = time.monotonic() + args.timeout
    srv = socket.socket(family(args.bind), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.bind, args.port))
    srv.listen(1)
    with open(args.ready, "w") as f:
        f.write("listening\n")
    srv.settimeout(left(deadline))
    conn, _ = srv.accept()
    srv.close()
    digest = hashlib.sha256()
    total = 0
    start = last = time.monotonic()
    gap = 0.0
    try:
        while True:
            conn.settimeout(left(deadline))
            data = conn.recv(CHUNK)
            now = time.monotonic()
            gap = max(gap, now - last)
            last = now
            if not data:
                break
            digest.update(data)
            total += len(data)
    except (TimeoutError, socket.timeout):
        print(f"xfer recv: timed out after {total} bytes", file=sys.stderr)
        return 1
    conn.close()
    print(f"{digest.hexdigest()} {total} {last - start:.3f} {gap:.3f}")
    return 0


def send(args):
    deadline = time.monotonic() + args.timeout
    digest = hashlib.sha256()
    total = 0
    sock = socket.create_connection((args.dst, args.port), timeout=left(deadline),
                                    source_address=(args.src, 0))
    start = time.monotonic()
    try:
        with open(args.file, "rb") as f:
            while True:
                data = f.read(CHUNK)
                if not data:
                    break
                if args.rate:
                    # Paced: never ahead of rate * elapsed.
                    ahead = (total + len(data)) / args.rate - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(min(ahead, left(deadline)))
                sock.settimeout(left(deadline))
                sock.sendall(data)
                digest.update(data)
                total += len(data)
        sock.shutdown(socket.SHUT_WR)
        # The receiver closes once it has read everything.
        sock.settimeout(left(deadline))
        while sock.recv(CHUNK):
            pass
    except (TimeoutError, socket.timeout):
        print(f"xfer send: timed out after {total} bytes", file=sys.stderr)
        return 1
    sock.close()
    print(f"{digest.hexdigest()} {total} {time.monotonic() - start:.3f}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--bind", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--ready", required=True)
    r.add_argument("--timeout", type=float, required=True)
    s = sub.add_parser("send")
    s.add_argument("--src", required=True)
    s.add_argument("--dst", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--file", required=True)
    s.add_argument("--rate", type=float, default=0)
    s.add_argument("--timeout", type=float, required=True)
    args = ap.parse_args()
    try:
        return recv(args) if args.cmd == "recv" else send(args)
    except OSError as e:
        print(f"xfer {args.cmd}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
