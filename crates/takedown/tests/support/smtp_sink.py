"""Loopback SMTP sink for the takedown tests (aiosmtpd).

Usage: smtp_sink.py OUTDIR
       smtp_sink.py --extract MESSAGE.eml OUTDIR   (decode a received message with Python's
       email package: OUTDIR/headers.txt, OUTDIR/body.txt, OUTDIR/attach-<filename>)

Listens on 127.0.0.1 on a free port and prints "PORT <n>" on stdout once ready. Every message
received is written to OUTDIR/<seq>.eml (the full RFC 5322 text); OUTDIR/received.log gets one
line "<Message-ID>" per message, so a test can count duplicates. If OUTDIR/hold exists when a
message arrives, the sink writes the message, then waits (up to 60 s) until the file is
removed before answering 250: the window a test uses to kill the sender between "the
message was handed over" and "the sender recorded it".
"""

import asyncio
import email
import email.policy
import os
import socket
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.seq = 0

    async def handle_DATA(self, server, session, envelope):
        self.seq += 1
        raw = envelope.original_content or envelope.content
        path = os.path.join(self.outdir, "%04d.eml" % self.seq)
        with open(path + ".tmp", "wb") as f:
            f.write(raw)
        os.rename(path + ".tmp", path)
        msg = email.message_from_bytes(raw)
        with open(os.path.join(self.outdir, "received.log"), "a") as f:
            f.write("%s\n" % msg.get("Message-ID", ""))
        hold = os.path.join(self.outdir, "hold")
        for _ in range(600):
            if not os.path.exists(hold):
                break
            await asyncio.sleep(0.1)
        return "250 OK queued as %d" % self.seq


def extract(eml, outdir):
    os.makedirs(outdir, exist_ok=True)
    with open(eml, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    with open(os.path.join(outdir, "headers.txt"), "w") as f:
        for k, v in msg.items():
            f.write("%s: %s\n" % (k, v))
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        data = part.get_payload(decode=True)
        if name:
            target = os.path.join(outdir, "attach-" + os.path.basename(name))
        else:
            target = os.path.join(outdir, "body.txt")
        with open(target, "wb") as f:
            f.write(data)


def main():
    if sys.argv[1] == "--extract":
        extract(sys.argv[2], sys.argv[3])
        return
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    controller = Controller(Sink(outdir), hostname="127.0.0.1", port=port)
    controller.start()
    print("PORT %d" % port, flush=True)
    try:
        sys.stdin.read()  # runs until the test closes stdin (or kills us)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
