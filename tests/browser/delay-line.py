#!/usr/bin/env python3
"""Delay, jitter and random loss for bad-network.test.mjs, on kernels without sch_netem.

Binds netfilter queues (NFQUEUE): each queued packet is dropped with probability LOSS_PERCENT,
else accepted only after a delay drawn from DELAY_MS +/- JITTER_MS. The packets stay in the
kernel (only their metadata is copied out) and release is first in, first out (a packet never
overtakes an earlier one of the same queue, as on a real line). A drop is a verdict given
after the sender's send() returned, as on a line (an iptables DROP in OUTPUT would fail the
send with EPERM instead). Python standard library only: raw nfnetlink.

Usage: delay-line.py DELAY_MS JITTER_MS LOSS_PERCENT QUEUE [QUEUE ...]
Prints "ready" once every queue is bound; runs until killed (SIGTERM/SIGINT).
"""

import collections
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NF_DROP = 0
NF_ACCEPT = 1
SO_RCVBUFFORCE = 33
NETLINK_NO_ENOBUFS = 5
SOL_NETLINK = 270


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def message(msg_type, queue, attrs, flags=NLM_F_REQUEST):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, 0, 0) + body


def expect_ack(sock, what):
    data = sock.recv(65536)
    length, msg_type = struct.unpack_from("=IH", data, 0)
    if msg_type == NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", data, 16)
        if error != 0:
            sys.exit(f"delay-line: {what} failed: {os.strerror(-error)}")


def main():
    delay = float(sys.argv[1]) / 1000.0
    jitter = float(sys.argv[2]) / 1000.0
    loss = float(sys.argv[3]) / 100.0
    queues = [int(q) for q in sys.argv[4:]]
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    for queue in queues:
        sock.send(message(NFQNL_MSG_CONFIG, queue, [attr(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_BIND, 0))],
                          NLM_F_REQUEST | NLM_F_ACK))
        expect_ack(sock, f"binding queue {queue}")
        sock.send(message(NFQNL_MSG_CONFIG, queue, [
            attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
            attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 8192)),
        ], NLM_F_REQUEST | NLM_F_ACK))
        expect_ack(sock, f"configuring queue {queue}")
    print("ready", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    held = {q: collections.deque() for q in queues}  # queue -> deque of (release_at, packet id)
    last_release = {q: 0.0 for q in queues}
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while True:
        now = time.monotonic()
        # Accept, per queue, every packet whose time has come: one batch verdict up to the last.
        for queue, packets in held.items():
            last_id = None
            while packets and packets[0][0] <= now:
                last_id = packets.popleft()[1]
            if last_id is not None:
                sock.send(message(NFQNL_MSG_VERDICT_BATCH, queue,
                                  [attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, last_id))]))
        due = [packets[0][0] for packets in held.values() if packets]
        timeout_ms = max(0, (min(due) - time.monotonic()) * 1000) if due else 1000
        if not poller.poll(timeout_ms):
            continue
        while True:
            try:
                data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            offset = 0
            arrived = time.monotonic()
            while offset + 16 <= len(data):
                length, msg_type = struct.unpack_from("=IH", data, offset)
                if length < 16:
                    break
                if msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    (queue,) = struct.unpack_from("!H", data, offset + 18)
                    at = offset + 20
                    while at + 4 <= offset + length:
                        alen, akind = struct.unpack_from("=HH", data, at)
                        if alen < 4:
                            break
                        if (akind & 0x7FFF) == NFQA_PACKET_HDR and queue in held:
                            (packet_id,) = struct.unpack_from("!I", data, at + 4)
                            if random.random() < loss:
                                sock.send(message(NFQNL_MSG_VERDICT, queue,
                                                  [attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_DROP, packet_id))]))
                                break
                            release = max(last_release[queue], arrived + delay + random.uniform(-jitter, jitter))
                            last_release[queue] = release
                            held[queue].append((release, packet_id))
                            break
                        at += (alen + 3) & ~3
                offset += (length + 3) & ~3


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
