#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes the seed corpus of every fuzzer (tests/fuzz/corpus/<target>/):
# a handful of small meaningful inputs in each target's input format (see
# the top of tests/fuzz/fuzz_<target>.c). Regression inputs (crashes found)
# are checked in beside them by hand, named regress-*.
#   python3 tests/fuzz/mkcorpus.py [DIR]     (default: tests/fuzz/corpus)
import json
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def u8(v):
    return struct.pack("<B", v & 0xFF)


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def chunk(b):
    return u16(len(b)) + b


def write(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- protobuf, just what the seeds need ----
def varint(v):
    v &= 0xFFFFFFFFFFFFFFFF
    b = b""
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            b += bytes([c | 0x80])
        else:
            return b + bytes([c])


def pb_int(field, v):
    return varint(field << 3) + varint(v)


def pb_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


# ---- virtqueue: cfg, avail_base, then ops (fuzz_virtqueue.c) ----
def gpa(region, off):  # region 0, 1, 2 at 0x10000, 0x20000, 0x80000
    return u8(region) + u16(off)


def vq_desc(i, region, off, length, flags, nxt):
    return u8(0) + u16(i) + gpa(region, off) + u16(length) + u8(flags) + u16(nxt)


def vq_table_desc(tregion, toff, i, region, off, length, flags, nxt):
    return u8(1) + gpa(tregion, toff) + u8(i) + gpa(region, off) + u16(length) + u8(flags) + u16(nxt)


def vq_publish(head):
    return u8(2) + u16(head)


POP = u8(4)
size16 = 4  # log2
write("virtqueue", "simple_chain",
      u8(size16 | 16) + u16(0) + vq_desc(0, 0, 0x4000, 16, 1, 1) + vq_desc(1, 1, 0x100, 64, 2, 0) + vq_publish(0) +
      POP + u8(6) + u16(0) + u16(32))
write("virtqueue", "indirect",
      u8(size16 | 16) + u16(0) + vq_desc(0, 0, 0x5000, 32, 4, 0) +
      vq_table_desc(0, 0x5000, 0, 0, 0x6000, 8, 1, 1) + vq_table_desc(0, 0x5000, 1, 2, 0x10, 128, 2, 0) +
      vq_publish(0) + POP)
write("virtqueue", "loop",
      u8(size16 | 16) + u16(0) + vq_desc(0, 0, 0x4000, 16, 1, 1) + vq_desc(1, 0, 0x4000, 16, 1, 0) + vq_publish(0) + POP)
write("virtqueue", "cross_region_event_idx",
      u8(size16 | 8) + u16(0xfffe) + vq_desc(3, 0, 0xfff0, 64, 2, 0) + vq_publish(3) + vq_publish(3) + POP +
      u8(3) + u16(0) + u8(0) + u16(1) + POP + u8(5) + u8(8) + u16(7))

# ---- vsock: cfg, then ops (fuzz_vsock.c) ----
OP_REQUEST, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST = 1, 2, 3, 4, 5, 6, 7


def vs_rx(n=4, size=4096 + 44):
    return u8(1) + u8(n - 1) + b"".join(u16(size) for _ in range(n))


def vs_pkt(op, payload=b"", sel=0, src=0, host=0, flags=0, split=False):
    b = u8(0x40 if split else 0) + u8(sel) + u8(src)  # src port 5000 + src
    if sel & 16:
        b += u8(host)  # dst port (1 << 30) + host: a host client's port
    b += u8(op) + u8(flags) + u32(0) + chunk(payload) + u16(0) + u8(20)
    return b


POLL, ACCEPT, READ = u8(5), u8(6), u8(7)


def vs_write(i, data):
    return u8(3) + u8(i) + chunk(data)


write("vsock", "guest_connects",
      u8(0) + vs_rx() + vs_pkt(OP_REQUEST) + POLL + ACCEPT + vs_write(0, b"hello guest") + POLL +
      vs_pkt(OP_RW, b"hello host", split=True) + POLL + READ + vs_pkt(OP_CREDIT_REQUEST) + POLL +
      vs_pkt(OP_SHUTDOWN, flags=3) + POLL)
write("vsock", "host_connects",
      u8(0) + vs_rx() + u8(2) + u8(0) + POLL + vs_pkt(OP_RESPONSE, sel=16) + POLL + vs_write(0, b"ping") + POLL +
      vs_pkt(OP_RW, b"pong", sel=16) + READ + u8(4) + u8(0) + POLL + vs_pkt(OP_RST, sel=16) + POLL)
write("vsock", "bad_handshake",
      u8(4) + vs_rx(1) + u8(0x82) + chunk(b"CONNECT abc\n") + u8(0x82) + chunk(b"CONNECT 99999999999\r\n") +
      u8(0x82) + chunk(b"X" * 70) + POLL)
write("vsock", "bad_packets",
      u8(2) + vs_rx(2, 16) + vs_pkt(8) + vs_pkt(OP_RW, b"x" * 100) + u8(0) + u8(0x80) + u8(0) + u8(OP_RW) +
      u8(0) + u32(0) + chunk(b"") + u32(0xFFFFFFFF) + u16(0) + u8(0) + POLL + u8(0x89))

# ---- p9: typed fields (fuzz_p9.c) ----
NAMES = ["file", "dir", "inner", "link", "abs", "up", "..", ".", "new", "canary", "secret", "", "a/b", "share", "/",
         "new2"]


def F8(v):
    return u8(0) + u8(v)


def F16(v):
    return u8(1) + u16(v)


def F32(v):
    return u8(2) + u32(v)


def F64(v):
    return u8(3) + u64(v)


def FID(v):
    return u8(4) + u8(v)


NOFID = u8(0x84)


def NAME(n):
    return u8(5) + u8(NAMES.index(n))


def STR(s):
    return u8(6) + chunk(s.encode())


def DATA(b):
    return u8(7) + chunk(b)


def p9(t, *fields):
    return u8(t) + u8(len(fields)) + u8(1) + b"".join(fields)


VERSION = p9(100, F32(65536), STR("9P2000.L"))
ATTACH = p9(104, FID(0), NOFID, NAME(""), NAME(""), F32(0))


def walk(fid, newfid, *names):
    return p9(110, FID(fid), FID(newfid), F16(len(names)), *[NAME(n) for n in names])


def lopen(fid, flags):
    return p9(12, FID(fid), F32(flags))


def read(fid, off=0, count=4096):
    return p9(116, FID(fid), F64(off), F32(count))


def clunk(fid):
    return p9(120, FID(fid))


O_RDWR, O_CREAT = 2, 0o100
write("p9", "read_file", VERSION + ATTACH + walk(0, 1, "file") + lopen(1, 0) + read(1) + p9(24, FID(1), F64(0x3fff)) +
      clunk(1))
write("p9", "create_write", VERSION + ATTACH + walk(0, 1) + p9(14, FID(1), NAME("new"), F32(O_RDWR | O_CREAT),
                                                                 F32(0o644), F32(0)) +
      p9(118, FID(1), F64(0), DATA(b"written by the guest\n")) + p9(50, FID(1), F32(0)) + clunk(1))
write("p9", "escapes", VERSION + ATTACH + walk(0, 1, "..") + walk(0, 2, "link") + lopen(2, 0) + read(2) +
      walk(0, 3, "abs", "secret") + walk(0, 4, "dir", "up", "canary") + walk(0, 5, "a/b") + walk(0, 6, "/") +
      p9(16, FID(0), NAME("new"), STR("../canary/secret"), F32(0)) + walk(0, 7, "new") + lopen(7, O_RDWR) +
      p9(118, FID(7), F64(0), DATA(b"pwned")))
write("p9", "dir_ops", VERSION + ATTACH + p9(72, FID(0), NAME("new"), F32(0o755), F32(0)) +
      p9(74, FID(0), NAME("new"), FID(0), NAME("new2")) + walk(0, 1, "dir") + lopen(1, 0) +
      p9(40, FID(1), F64(0), F32(8192)) + p9(76, FID(0), NAME("new2"), F32(0x200)) +
      p9(76, FID(0), NAME(".."), F32(0)) + p9(20, FID(1), FID(0), NAME("..")) + p9(8, FID(0)))
write("p9", "setattr_xattr_link", VERSION + ATTACH + walk(0, 1, "file") +
      p9(26, FID(1), F32(0x1ff), F32(0o4777), F32(0), F32(0), F64(1 << 40), F64(0), F64(0), F64(0), F64(0)) +
      p9(30, FID(1), FID(2), STR("user.x")) + p9(70, FID(0), FID(1), NAME("new")) +
      p9(18, FID(0), NAME("new2"), F32(0o20644), F32(1), F32(3), F32(0)) + p9(22, FID(1)))
write("p9", "malformed", u8(100) + u8(0x80) + u8(0) + chunk(b"\xff\xff\xff\xff\x08\x00") +
      u8(110) + u8(0xc3) + u8(2) + FID(0) + FID(1) + F16(16) + u32(3) + u8(0) + u8(0x20) + u8(0) + u16(9))

# ---- vmm_virtio: device byte, then ops (fuzz_vmm_virtio.c) ----


def vop(kind, q=0):
    """The op byte for kind (op % 12) on queue q (op >> 7), bit 0x40 clear."""
    for op in range(q << 7, 256):
        if op % 12 == kind and not op & 0x40 and (op >> 7) == q:
            return u8(op)
    raise ValueError((kind, q))


def vmm_init(nq):
    b = vop(2)
    for q in range(nq):
        b += vop(3, q) + u8(4) + u8(0)  # 16 entries, default rings
    return b + vop(4)


def vmm_req(q, data, out_off=0, in_off=0):
    return vop(8, q) + u16(out_off) + u16(in_off) + chunk(data)


def p9msg(t, body):
    return u32(7 + len(body)) + u8(t) + u16(1) + body


def s9(s):
    return u16(len(s)) + s.encode()


v9 = b""
v9 += vmm_req(0, p9msg(100, u32(8192) + s9("9P2000.L")))
v9 += vmm_req(0, p9msg(104, u32(0) + u32(0xFFFFFFFF) + s9("") + s9("") + u32(0)), 0x100, 0x1000)
v9 += vmm_req(0, p9msg(110, u32(0) + u32(1) + u16(1) + s9("file")), 0x200, 0x2000)
v9 += vmm_req(0, p9msg(12, u32(1) + u32(0)), 0x300, 0x3000)
v9 += vmm_req(0, p9msg(116, u32(1) + u64(0) + u32(4096)), 0x400, 0x4000)
write("vmm_virtio", "9p_requests", u8(1) + vmm_init(1) + v9 + vop(11) + u8(9) + u32(0))
eth = b"\xff" * 6 + b"\x02\x4d\x54\x01\x02\x03" + b"\x08\x00" + b"\x45" + b"\x00" * 45
vnet = b"\x00" * 12
csum_hdr = b"\x01\x00" + b"\x00" * 4 + u16(14) + u16(10) + b"\x00\x00"
write("vmm_virtio", "net_frames",
      u8(0) + vmm_init(2) + vmm_req(1, vnet + eth) + vmm_req(1, vnet[:5]) + vop(10) + chunk(vnet + eth) +
      vop(10) + chunk(csum_hdr + eth) + vop(10) + chunk(b"\x00\x04" + b"\x00" * 10 + eth) + vop(11) +
      vmm_req(0, b"", 0, 0x100) + vop(11))
write("vmm_virtio", "registers",
      u8(0) + vop(1) + u16(0) + u8(0) + vop(1) + u16(0x100) + u8(1) + u8(0x40 | 1) + u8(2) + u8(3) +
      vop(0) + u8(0x1c) + u8(0) + u32(0xffffffff) + vop(3) + u8(9) + u8(1) + u8(0xff) + u64(1 << 63) + u8(0) +
      u16(0) + u8(0xf0) + u64(0xfff0) + vop(4) + vop(8) + u16(0) + u16(0) + chunk(b"x"))

# ---- vhost_user (fuzz_vhost_user.c) ----
REQS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 25, 34]


def vu_msg(req, payload, fds=(), need_reply=False):
    b = u8(len(fds) << 2) + u8(REQS.index(req) | (0x80 if need_reply else 0)) + chunk(payload)
    for kind, data in fds:
        b += u8(kind)
        if kind != 3:
            b += chunk(data) + u16(0)
    return b


UADDR = 0x7F0000000000
ring = b""
ring += u64(0x1000) + u32(64) + u16(0) + u16(0)  # desc 0: readable
ring += u64(0x2000) + u32(128) + u16(2) + u16(0)  # desc 1: writable
ring = ring.ljust(0x100, b"\0") + u16(0) + u16(2) + u16(0) + u16(1)  # avail: idx 2, heads 0, 1
vu = b""
vu += vu_msg(1, b"") + vu_msg(2, u64((1 << 32) | (1 << 30) | (1 << 29))) + vu_msg(15, b"")
vu += vu_msg(16, u64((1 << 3) | (1 << 9))) + vu_msg(3, b"")
vu += vu_msg(5, u32(1) + u32(0) + u64(0) + u64(0x10000) + u64(UADDR) + u64(0), [(0, ring)], True)
vu += vu_msg(8, u32(0) + u32(8)) + vu_msg(9, u32(0) + u32(0) + u64(UADDR) + u64(UADDR + 0x200) + u64(UADDR + 0x100) +
                                         u64(0))
vu += vu_msg(10, u32(0) + u32(0)) + vu_msg(12, u64(0), [(3, b"")]) + u8(3)
vu += vu_msg(24, u32(0) + u32(8) + u32(0) + b"\0" * 8) + vu_msg(11, u32(0) + u32(0))
write("vhost_user", "ring", vu)
write("vhost_user", "bad_mem_table",
      vu_msg(16, u64(1 << 3)) + vu_msg(5, u32(1) + u32(0) + u64(0) + u64(0x100000) + u64(UADDR) + u64(0x1000),
                                       [(1, b"")], True) +
      vu_msg(5, u32(9) + u32(0), [], True) + vu_msg(34, b""))

# ---- agent_requests (fuzz_agent_requests.c) ----
METHODS = ["Check", "CreateContainer", "StartContainer", "ExecProcess", "SignalProcess", "WaitProcess",
           "RemoveContainer", "PauseContainer", "ResumeContainer", "StatsContainer", "UpdateContainer",
           "TtyWinResize", "CloseStdin", "DestroySandbox", "SyncClock"]
stdio = pb_int(1, 1) + pb_int(3, 1) + pb_int(5, 24) + pb_int(6, 80)
iface = pb_bytes(1, "eth0") + pb_bytes(2, "02:42:ac:11:00:02") + pb_int(3, 1500) + \
    pb_bytes(4, pb_bytes(1, "10.0.0.2") + pb_int(2, 24)) + pb_bytes(5, pb_bytes(3, "10.0.0.1") + pb_bytes(4, "eth0"))
create = pb_bytes(1, "c1") + pb_bytes(2, '{"ociVersion":"1.0.2"}') + pb_bytes(3, stdio) + pb_bytes(4, "/b") + \
    pb_bytes(5, iface) + pb_bytes(6, "host")
write("agent_requests", "unpack_create", u8(1) + create)
write("agent_requests", "unpack_exec", u8(3) + pb_bytes(1, "c1") + pb_bytes(2, "e1") + pb_bytes(3, "{}") +
      pb_bytes(4, stdio))
write("agent_requests", "unpack_clock", u8(14) + pb_int(1, -5) + pb_int(2, 999999999) + pb_int(3, 1))


def req_frame(method, payload, kind=0):
    return u8(kind) + u8(METHODS.index(method)) + chunk(payload)


write("agent_requests", "serve",
      u8(0x80) + req_frame("Check", b"") + req_frame("CreateContainer", create) +
      req_frame("SignalProcess", pb_bytes(1, "c1") + pb_int(3, 9)) + req_frame("Check", b"", 2) +
      u8(1) + chunk(b"\x00\x00\x00\x05\x00\x00\x00\x09\x01\x00\x0a\x03abc"))

# ---- agent_client (fuzz_agent_client.c) ----


def resp(payload, call=None, code=None, msg=""):
    b = u8(2 if code is not None else 0)
    if call is not None:
        b += u8(call)
    if code is not None:
        b += u8(code) + chunk(msg.encode())
    return b + chunk(payload)


check = pb_bytes(1, "0.1.0") + pb_bytes(2, "6.12.0-moat")
stats = b"".join(pb_int(i, 1000 * i) for i in range(1, 9)) + pb_bytes(9, varint(1) + varint(42))
write("agent_client", "calls",
      u8(0) + resp(check) + resp(pb_int(1, 7), 1) + resp(b"", 2) + resp(pb_int(1, 137) + pb_int(2, 1) + pb_int(3, 9),
                                                                      5) +
      resp(stats, 12) + resp(pb_int(1, -1000) + pb_int(2, 1), 14) + resp(b"", 7, 5, "no such container"))
write("agent_client", "refused", u8(1) + chunk(b"ERR no listener\n"))
write("agent_client", "bad_frames",
      u8(0) + resp(check) + u8(1) + u8(4) + chunk(b"\xff\xff\xff\xff\x00\x00\x00\x03\x02\x00") +
      u8(4) + u8(0) + chunk(b"") + u32(7))

# ---- oci (fuzz_oci.c) ----
config = {
    "ociVersion": "1.0.2",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0, "additionalGids": [1]},
                "args": ["sh", "-c", "echo hi"], "env": ["PATH=/bin"], "cwd": "/",
                "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": True},
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "moat",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro"]}],
    "hooks": {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]},
    "annotations": {"a": "b"},
    "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}],
              "resources": {"memory": {"limit": 1 << 28}, "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                            "pids": {"limit": 64},
                            "devices": [{"allow": False, "access": "rwm"},
                                        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]},
              "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}],
              "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
              "sysctl": {"net.ipv4.ip_forward": "1"},
              "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]},
              "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]},
}
write("oci", "config", u8(0) + json.dumps(config).encode())
write("oci", "process", u8(1) + json.dumps(config["process"]).encode())
write("oci", "resources", u8(2) + json.dumps(config["linux"]["resources"]).encode())
write("oci", "signal", u8(3) + b"SIGRTMIN+3")
write("oci", "bad_types", u8(0) + b'{"ociVersion":1,"process":{"args":"sh","user":{"uid":-1}},"mounts":[7]}')
