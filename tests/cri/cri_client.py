#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A small CRI v1 client for moat's tests: it drives a container runtime's
CRI endpoint (containerd's CRI plugin) with the calls the kubelet makes, one
function per CRI call, over the runtime's unix socket.

The protocol definitions are tests/cri/api.proto, an unmodified copy of
runtime/v1/api.proto from the kubernetes cri-api project at tag v0.25.0
(the version containerd 1.6.20 vendors). `compile DIR` turns a copy of it
into Python modules in DIR (a temp dir; never the source tree), dropping
the gogoproto options, which only steer Go code generation. Every other
command takes --gen DIR to find those modules.

Commands take and print JSON in the protobuf JSON mapping (field names as
in the .proto, enums by name, int64 as strings, defaults included), so a
shell test can build requests and read replies with jq:

  cri_client.py compile DIR
  cri_client.py --gen DIR --socket SOCK version
  cri_client.py ... runp POD.json [--handler NAME]        -> pod id
  cri_client.py ... create POD_ID CTR.json POD.json        -> container id
  cri_client.py ... start|stop|rm ID, stopp|rmp POD_ID
  cri_client.py ... status ID | pstatus POD_ID [--verbose]
  cri_client.py ... exec [--timeout S] ID -- CMD...  (stdout, stderr and
                    exit code are the process's own)
  cri_client.py ... ps [--pod ID] | pods | stats [--pod ID]
  cri_client.py ... image-status REF | images
  cri_client.py logs FILE                     (parses a CRI log file)

A failed call prints `cri: METHOD: CODE: details` on stderr and exits 125.
"""

import argparse
import datetime
import json
import os
import re
import sys

ERR_EXIT = 125
HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "api.proto")

api = None  # api_pb2, loaded by load()
api_grpc = None  # api_pb2_grpc


def compile_proto(gen_dir):
    """Compiles tests/cri/api.proto into gen_dir (api_pb2.py, api_pb2_grpc.py)."""
    from grpc_tools import protoc

    proto_dir = os.path.join(gen_dir, "proto")
    os.makedirs(proto_dir, exist_ok=True)
    with open(PROTO) as src, open(os.path.join(proto_dir, "api.proto"), "w") as dst:
        for line in src:
            # gogoproto options and their import only matter to Go.
            if "gogoproto" in line:
                continue
            dst.write(line)
    rc = protoc.main(
        [
            "protoc",
            "-I" + proto_dir,
            "--python_out=" + gen_dir,
            "--grpc_python_out=" + gen_dir,
            os.path.join(proto_dir, "api.proto"),
        ]
    )
    if rc != 0:
        raise SystemExit("cri: protoc failed with status %d" % rc)


def load(gen_dir):
    global api, api_grpc
    sys.path.insert(0, gen_dir)
    import api_pb2
    import api_pb2_grpc

    api, api_grpc = api_pb2, api_pb2_grpc


class Client:
    """The RuntimeService and ImageService stubs on one channel. Every call
    has a deadline (`timeout` seconds unless a call says otherwise)."""

    def __init__(self, socket, timeout):
        import grpc

        self.grpc = grpc
        self.timeout = timeout
        # the kubelet's limit for CRI messages is 16 MiB; a unix socket
        # never goes through an HTTP proxy
        opts = [
            ("grpc.max_receive_message_length", 16 << 20),
            ("grpc.max_send_message_length", 16 << 20),
            ("grpc.enable_http_proxy", 0),
        ]
        self.channel = grpc.insecure_channel("unix://" + socket, options=opts)
        self.rt = api_grpc.RuntimeServiceStub(self.channel)
        self.img = api_grpc.ImageServiceStub(self.channel)

    def call(self, stub, method, request, timeout=None):
        try:
            return getattr(stub, method)(request, timeout=timeout or self.timeout)
        except self.grpc.RpcError as e:
            raise CriError(method, e.code().name, e.details())

    # --- RuntimeService ---------------------------------------------------
    def version(self):
        return self.call(self.rt, "Version", api.VersionRequest(version="v1"))

    def run_pod_sandbox(self, config, handler=""):
        req = api.RunPodSandboxRequest(config=config, runtime_handler=handler)
        return self.call(self.rt, "RunPodSandbox", req).pod_sandbox_id

    def pod_sandbox_status(self, pod_id, verbose=False):
        req = api.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose)
        return self.call(self.rt, "PodSandboxStatus", req)

    def stop_pod_sandbox(self, pod_id):
        req = api.StopPodSandboxRequest(pod_sandbox_id=pod_id)
        return self.call(self.rt, "StopPodSandbox", req)

    def remove_pod_sandbox(self, pod_id):
        req = api.RemovePodSandboxRequest(pod_sandbox_id=pod_id)
        return self.call(self.rt, "RemovePodSandbox", req)

    def list_pod_sandbox(self):
        return self.call(self.rt, "ListPodSandbox", api.ListPodSandboxRequest())

    def create_container(self, pod_id, config, sandbox_config):
        req = api.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox_config
        )
        return self.call(self.rt, "CreateContainer", req).container_id

    def start_container(self, cid):
        req = api.StartContainerRequest(container_id=cid)
        return self.call(self.rt, "StartContainer", req)

    def stop_container(self, cid, grace):
        req = api.StopContainerRequest(container_id=cid, timeout=grace)
        return self.call(self.rt, "StopContainer", req, timeout=grace + self.timeout)

    def remove_container(self, cid):
        req = api.RemoveContainerRequest(container_id=cid)
        return self.call(self.rt, "RemoveContainer", req)

    def container_status(self, cid, verbose=False):
        req = api.ContainerStatusRequest(container_id=cid, verbose=verbose)
        return self.call(self.rt, "ContainerStatus", req)

    def exec_sync(self, cid, cmd, timeout):
        """Returns (stdout bytes, stderr bytes, exit code). timeout 0 means
        none on the runtime's side; ours is then self.timeout."""
        req = api.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout)
        r = self.call(self.rt, "ExecSync", req, timeout=timeout + self.timeout)
        return r.stdout, r.stderr, r.exit_code

    def list_containers(self, pod_id=""):
        f = api.ContainerFilter(pod_sandbox_id=pod_id)
        return self.call(self.rt, "ListContainers", api.ListContainersRequest(filter=f))

    def list_container_stats(self, pod_id=""):
        f = api.ContainerStatsFilter(pod_sandbox_id=pod_id)
        req = api.ListContainerStatsRequest(filter=f)
        return self.call(self.rt, "ListContainerStats", req)

    # --- ImageService -------------------------------------------------------
    def image_status(self, ref):
        req = api.ImageStatusRequest(image=api.ImageSpec(image=ref))
        return self.call(self.img, "ImageStatus", req)

    def list_images(self):
        return self.call(self.img, "ListImages", api.ListImagesRequest())


class CriError(Exception):
    def __init__(self, method, code, details):
        super().__init__("%s: %s: %s" % (method, code, details))


# --- CRI log files ------------------------------------------------------------
# The kubelet's container log format: one entry per line,
#   <RFC3339Nano time> <stdout|stderr> <F|P> <message>
# F ends a line, P is a part of a longer one that the next entries continue.
LOG_LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([FP]) (.*)$"
)


def parse_time(s):
    """An RFC 3339 time with up to nanoseconds, as seconds since the epoch."""
    m = re.match(r"^(.{19})(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", s)
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    off = 0
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        off = sign * (int(m.group(3)[1:3]) * 3600 + int(m.group(3)[4:6]) * 60)
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    epoch = base.replace(tzinfo=datetime.timezone.utc).timestamp()
    return epoch - off + frac


def read_log(path):
    """Parses a CRI log file. Returns a dict: `entries` (time, stream, tag,
    msg per line), `bad` (lines that do not match the format), and per stream
    the reassembled `lines` (P parts joined up to their F) and the `tail`
    (P parts after the last F: output that did not end with a newline)."""
    entries, bad = [], []
    lines = {"stdout": [], "stderr": []}
    pending = {"stdout": b"", "stderr": b""}
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        bad.append({"line": data.rsplit(b"\n", 1)[-1].decode(errors="replace"),
                    "why": "no newline at the end of the file"})
    for raw in data.split(b"\n"):
        if raw == b"":
            continue
        m = LOG_LINE.match(raw)
        if not m:
            bad.append({"line": raw.decode(errors="replace"), "why": "not a CRI log line"})
            continue
        ts, stream, tag, msg = (g.decode(errors="replace") if i < 3 else g
                                for i, g in enumerate(m.groups()))
        try:
            t = parse_time(ts)
        except ValueError:
            bad.append({"line": raw.decode(errors="replace"), "why": "bad time"})
            continue
        entries.append({"time": ts, "epoch": t, "stream": stream, "tag": tag,
                        "msg": msg.decode(errors="replace")})
        pending[stream] += msg
        if tag == "F":
            lines[stream].append(pending[stream].decode(errors="replace"))
            pending[stream] = b""
    # A stream whose output did not end with a newline ends with P entries
    # (that is what containerd writes at EOF): its `tail`.
    tail = {stream: rest.decode(errors="replace") for stream, rest in pending.items()}
    return {"entries": entries, "bad": bad, "lines": lines, "tail": tail}


# --- command line -----------------------------------------------------------------
def to_json(msg):
    from google.protobuf import json_format

    return json_format.MessageToDict(
        msg, preserving_proto_field_name=True, including_default_value_fields=True
    )


def from_json(path, cls):
    from google.protobuf import json_format

    with open(path) as f:
        return json_format.Parse(f.read(), cls())


def out(obj):
    json.dump(obj, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


def main(argv):
    p = argparse.ArgumentParser(prog="cri_client.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", help="the CRI endpoint (a unix socket path)")
    p.add_argument("--gen", help="the directory that `compile` wrote")
    p.add_argument("--timeout", type=float, default=60, help="deadline of every call, seconds")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("compile").add_argument("dir")
    sub.add_parser("version")
    s = sub.add_parser("runp")
    s.add_argument("config")
    s.add_argument("--handler", default="")
    s = sub.add_parser("create")
    s.add_argument("pod")
    s.add_argument("config")
    s.add_argument("pod_config")
    for name in ("start", "rm", "stopp", "rmp"):
        sub.add_parser(name).add_argument("id")
    s = sub.add_parser("stop")
    s.add_argument("id")
    s.add_argument("--grace", type=int, default=10)
    for name in ("status", "pstatus"):
        s = sub.add_parser(name)
        s.add_argument("id")
        s.add_argument("--verbose", action="store_true")
    s = sub.add_parser("exec")
    s.add_argument("--timeout", type=int, default=0, dest="exec_timeout")
    s.add_argument("id")
    s.add_argument("argv", nargs=argparse.REMAINDER)
    for name in ("ps", "stats"):
        sub.add_parser(name).add_argument("--pod", default="")
    sub.add_parser("pods")
    sub.add_parser("image-status").add_argument("ref")
    sub.add_parser("images")
    sub.add_parser("logs").add_argument("file")
    a = p.parse_args(argv)

    if a.cmd == "compile":
        compile_proto(a.dir)
        return 0
    if a.cmd == "logs":
        out(read_log(a.file))
        return 0
    if not a.gen or not a.socket:
        p.error("--gen and --socket are needed for " + a.cmd)
    load(a.gen)
    c = Client(a.socket, a.timeout)
    try:
        if a.cmd == "version":
            out(to_json(c.version()))
        elif a.cmd == "runp":
            print(c.run_pod_sandbox(from_json(a.config, api.PodSandboxConfig), a.handler))
        elif a.cmd == "create":
            cfg = from_json(a.config, api.ContainerConfig)
            print(c.create_container(a.pod, cfg, from_json(a.pod_config, api.PodSandboxConfig)))
        elif a.cmd == "start":
            c.start_container(a.id)
        elif a.cmd == "stop":
            c.stop_container(a.id, a.grace)
        elif a.cmd == "rm":
            c.remove_container(a.id)
        elif a.cmd == "stopp":
            c.stop_pod_sandbox(a.id)
        elif a.cmd == "rmp":
            c.remove_pod_sandbox(a.id)
        elif a.cmd == "status":
            out(to_json(c.container_status(a.id, a.verbose)))
        elif a.cmd == "pstatus":
            out(to_json(c.pod_sandbox_status(a.id, a.verbose)))
        elif a.cmd == "exec":
            cmd = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
            so, se, code = c.exec_sync(a.id, cmd, a.exec_timeout)
            sys.stdout.buffer.write(so)
            sys.stdout.flush()
            sys.stderr.buffer.write(se)
            sys.stderr.flush()
            return code
        elif a.cmd == "ps":
            out(to_json(c.list_containers(a.pod)))
        elif a.cmd == "stats":
            out(to_json(c.list_container_stats(a.pod)))
        elif a.cmd == "pods":
            out(to_json(c.list_pod_sandbox()))
        elif a.cmd == "image-status":
            out(to_json(c.image_status(a.ref)))
        elif a.cmd == "images":
            out(to_json(c.list_images()))
    except CriError as e:
        print("cri: %s" % e, file=sys.stderr)
        return ERR_EXIT
    finally:
        c.channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
