#!/usr/bin/env python3
# Runs `modike ... connect SITE` on a pseudo-terminal, as a user would:
# types USER at "User name:" and PASSWORD at "Password:" prompts, copies
# everything the terminal shows to OUT, and sends Ctrl-C (the terminal's
# interrupt character, so the line discipline raises SIGINT) once the file
# CTRLC exists. Exits with modike's exit status.
#
# usage: pty-connect.py OUT CTRLC USER PASSWORD -- MODIKE-COMMAND...
import os
import pty
import select
import sys
import time

out_path, ctrlc_path, user, password = sys.argv[1:5]
assert sys.argv[5] == "--"
argv = sys.argv[6:]

pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)

seen = b""
typed = 0
sent_ctrlc = False
status = None
with open(out_path, "wb", buffering=0) as out:
    while status is None:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:   # EIO: the child closed the terminal
                data = b""
            if data:
                out.write(data)
                seen += data
        # Answer each prompt once, in the order they appear.
        while True:
            i_user = seen.find(b"User name: ")
            i_pass = seen.find(b"Password: ")
            hits = [(i, w) for i, w in ((i_user, user), (i_pass, password)) if i >= 0]
            if not hits:
                break
            i, word = min(hits)
            time.sleep(0.2)   # the client turns echo off before reading
            os.write(fd, word.encode() + b"\n")
            typed += 1
            seen = seen[i + 10:]
        if not sent_ctrlc and os.path.exists(ctrlc_path):
            os.write(fd, b"\x03")
            sent_ctrlc = True
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
    # What is left on the terminal.
    while True:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            break
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out.write(data)
    out.write(b"\n[pty-connect] prompts answered: %d\n" % typed)
sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
