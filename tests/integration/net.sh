#!/bin/bash
# Networking into the VM (docs/architecture.md, Networking): the interface of
# the container's network namespace on the host (a veth, as Docker's hook or
# CNI would leave it) reaches the container in the guest through a tap and a
# tc redirect, with its name, MAC, MTU, addresses and routes. Needs root,
# ip, tc, python3 and the built VM (QEMU).
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh
source tests/clients/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
for f in "$MOAT" build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "networking" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "networking" "needs root"
    exit 0
fi
for c in ip tc python3; do
    if ! command -v $c >/dev/null; then
        skip "networking" "$c is not installed"
        exit 0
    fi
done

ROOT=$(mktemp -d /tmp/moat-net.XXXXXX)
WORK=$(mktemp -d /tmp/moat-net-work.XXXXXX)
X=$(($$ % 200 + 20))
NS=moatnet$X
HV=mnh$X # host end of the veth
PORT=18080
SRV=
cleanup() {
    [ -n "$SRV" ] && kill "$SRV" 2>/dev/null
    pkill -KILL -f "$ROOT/" 2>/dev/null
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    ip netns del "$NS" 2>/dev/null
    ip link del "$HV" 2>/dev/null
    rm -rf "$ROOT" "$WORK"
}
clients_on_exit cleanup
moat() { "$MOAT" --root "$ROOT" "$@"; }


# taps NETNS-ARGS...: the moat taps in a network namespace ("" = none)
taps() { ip "$@" -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep '^moat' | tr '\n' ' '; }
ingress() { tc -n "$NS" qdisc show dev eth0 2>/dev/null | grep -c ingress; }

# --- the namespace: a veth whose far end is eth0 in $NS --------------------
if ! ip netns add "$NS" ||
    ! ip link add "$HV" type veth peer name mnc$X ||
    ! ip addr add 10.200.$X.1/24 dev "$HV" ||
    ! ip -6 addr add fd00:200:$X::1/64 dev "$HV" nodad ||
    ! ip link set "$HV" up ||
    ! ip link set mnc$X netns "$NS" ||
    ! ip -n "$NS" link set mnc$X name eth0 ||
    ! ip -n "$NS" link set eth0 mtu 1400 ||
    ! ip -n "$NS" addr add 10.200.$X.2/24 dev eth0 ||
    ! ip -n "$NS" -6 addr add fd00:200:$X::2/64 dev eth0 nodad ||
    ! ip -n "$NS" link set eth0 up ||
    ! ip -n "$NS" route add default via 10.200.$X.1 ||
    ! ip -n "$NS" route add 10.201.$X.0/24 via 10.200.$X.1 metric 7; then
    not_ok "set up network namespace $NS with a veth"
    exit 1
fi
MAC=$(ip -n "$NS" -o link show eth0 | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p')

mkdir -p "$WORK/www"
echo "moat-net-token-$X" >"$WORK/www/token.txt"
python3 -m http.server --bind 10.200.$X.1 --directory "$WORK/www" $PORT >"$WORK/http.log" 2>&1 &
SRV=$!
for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('10.200.$X.1', $PORT), 1)" 2>/dev/null && break
    sleep 0.1
done

# --- 1. a container in $NS: eth0 in the guest, and traffic both ways -------
B=$WORK/veth
script="ip -o link show dev eth0; ip -o addr show dev eth0; ip route; ip -6 route
echo token=\$(timeout 20 wget -q -O - http://10.200.$X.1:$PORT/token.txt)
echo links=\$(ip -o link show | awk -F': ' '{print \$2}' | cut -d@ -f1 | tr '\n' ' ')"
bundle "$B" '.process.args = ["sh", "-c", $s]
  | .linux.namespaces |= map(if .type == "network" then .path = $ns else . end)' \
    --arg s "$script" --arg ns "/var/run/netns/$NS"
moat run -b "$B" netc >"$WORK/veth.out" 2>"$WORK/veth.err"
rc=$?
out=$(cat "$WORK/veth.out")
expect_eq "container in $NS exits 0" 0 "$rc"
[ "$rc" -ne 0 ] && diag "stderr: $(cat "$WORK/veth.err")"
case "$out" in *"inet 10.200.$X.2/24"*) ok "eth0 has 10.200.$X.2/24 in the guest" ;;
*) not_ok "eth0 has 10.200.$X.2/24 in the guest"; diag "$out" ;; esac
case "$out" in *"inet6 fd00:200:$X::2/64"*) ok "eth0 has the IPv6 address fd00:200:$X::2/64" ;;
*) not_ok "eth0 has the IPv6 address fd00:200:$X::2/64" ;; esac
case "$out" in *"link/ether $MAC "*) ok "eth0 has the host interface's MAC ($MAC)" ;;
*) not_ok "eth0 has the host interface's MAC ($MAC)" ;; esac
case "$out" in *"eth0: <"*"mtu 1400 "*) ok "eth0 has the host interface's MTU (1400)" ;;
*) not_ok "eth0 has the host interface's MTU (1400)" ;; esac
case "$out" in *"default via 10.200.$X.1 dev eth0"*) ok "default route via 10.200.$X.1" ;;
*) not_ok "default route via 10.200.$X.1" ;; esac
case "$out" in *"10.201.$X.0/24 via 10.200.$X.1 dev eth0"*"metric 7"*) ok "extra route with its metric" ;;
*) not_ok "extra route with its metric" ;; esac
expect_eq "wget from the host's http server through the VM's eth0" "moat-net-token-$X" \
    "$(sed -n 's/^token=//p' "$WORK/veth.out")"
expect_eq "the container's interfaces are lo and eth0" "lo eth0" \
    "$(sed -n 's/^links=//p' "$WORK/veth.out" | xargs)"
expect_eq "no tap left in $NS" "" "$(taps -n "$NS")"
expect_eq "no ingress qdisc left on $NS's eth0" 0 "$(ingress)"
expect_eq "no tap in the host's namespace" "" "$(taps)"
[ -e "$ROOT/netc" ] && not_ok "state of netc removed" || ok "state of netc removed"

# --- 2. create / start / delete: the redirect lives as long as the VM ------
B=$WORK/detached
bundle "$B" '.process.args = ["sleep", "300"]
  | .linux.namespaces |= map(if .type == "network" then .path = $ns else . end)' --arg ns "/var/run/netns/$NS"
if moat create -b "$B" netd >/dev/null 2>"$WORK/netd.err" </dev/null; then
    ok "create in $NS"
    expect_eq "while created: the VM's tap is in $NS" "moat" "$(taps -n "$NS" | cut -c1-4)"
    expect_eq "while created: eth0 has an ingress qdisc (the redirect)" 1 "$(ingress)"
    moat start netd
    # a TCP connection to a closed port: the guest's kernel answers with a RST
    if python3 -c "
import socket, sys
s = socket.socket(); s.settimeout(10)
try: s.connect(('10.200.$X.2', 1))
except ConnectionRefusedError: sys.exit(0)
except OSError: sys.exit(1)
sys.exit(0)"; then ok "the host reaches the container at 10.200.$X.2 (TCP RST from the guest)"
    else not_ok "the host reaches the container at 10.200.$X.2 (TCP RST from the guest)"; fi
    # a second container in the same namespace (a pod, --network
    # container:X): eth0 already reaches netd's VM, so it gets only lo
    B2=$WORK/second
    bundle "$B2" '.process.args = ["sh", "-c", "ip -o link show | awk -F\": \" \"{print \\$2}\" | tr \"\\n\" \" \""]
      | .linux.namespaces |= map(if .type == "network" then .path = $ns else . end)' --arg ns "/var/run/netns/$NS"
    out=$(moat run -b "$B2" nets 2>"$WORK/second.err")
    rc=$?
    expect_eq "a second container in $NS runs" 0 "$rc"
    expect_eq "a second container in $NS gets only lo" "lo" "$(echo $out)"
    case "$(cat "$WORK/second.err")" in *"eth0"*"another container"*) ok "a second container in $NS: a warning names eth0" ;;
    *) not_ok "a second container in $NS: a warning names eth0"; diag "$(cat "$WORK/second.err")" ;; esac
    expect_eq "the second container left netd's redirect alone" 1 "$(ingress)"
    moat delete -f netd
    for _ in $(seq 50); do [ "$(ingress)" = 0 ] && [ -z "$(taps -n "$NS")" ] && break; sleep 0.1; done
    expect_eq "after delete -f: no tap in $NS" "" "$(taps -n "$NS")"
    expect_eq "after delete -f: no ingress qdisc on eth0" 0 "$(ingress)"
else
    not_ok "create in $NS"
    diag "$(cat "$WORK/netd.err")"
fi

# --- 3. a fresh network namespace (no path): only lo, as before ------------
B=$WORK/fresh
bundle "$B" '.process.args = ["sh", "-c", "ip -o link show | awk -F\": \" \"{print \\$2}\" | tr \"\\n\" \" \"; echo; ip -o link show lo | grep -c LOWER_UP; timeout 5 wget -q -O /dev/null http://127.0.0.1:1/ 2>&1 | grep -o refused; true"]'
out=$(moat run -b "$B" netf 2>"$WORK/fresh.err")
rc=$?
expect_eq "fresh network namespace: exits 0" 0 "$rc"
expect_eq "fresh network namespace: only lo" "lo" "$(echo $out | cut -d' ' -f1)"
expect_eq "fresh network namespace: lo is up (127.0.0.1 refuses, not unreachable)" "lo 1 refused" "$(echo $out)"
expect_eq "fresh network namespace: no tap in the host's namespace" "" "$(taps)"

# --- 4. the host's own network namespace never gets a tap ------------------
B=$WORK/hostns
bundle "$B" '.process.args = ["sh", "-c", "ip -o link show | wc -l"]
  | .linux.namespaces |= map(if .type == "network" then .path = "/proc/self/ns/net" else . end)'
out=$(moat run -b "$B" neth 2>"$WORK/hostns.err")
expect_eq "host network namespace: the container gets only lo" 1 "$(echo $out)"
expect_eq "host network namespace: no tap made in it" "" "$(taps)"

# --- 5. a failing step fails create, names the interface, leaves nothing ---
tc -n "$NS" qdisc add dev eth0 ingress
B=$WORK/veth
if moat run -b "$B" netx >/dev/null 2>"$WORK/fail.err"; then
    not_ok "eth0 with an ingress qdisc of its own: create fails"
else
    case "$(cat "$WORK/fail.err")" in
    *"eth0"*"tc"*) ok "eth0 with an ingress qdisc of its own: create fails naming eth0 and tc" ;;
    *) not_ok "eth0 with an ingress qdisc of its own: create fails naming eth0 and tc"; diag "$(cat "$WORK/fail.err")" ;;
    esac
fi
expect_eq "after the failure: no tap in $NS" "" "$(taps -n "$NS")"
expect_eq "after the failure: eth0 keeps its own ingress qdisc" 1 "$(ingress)"
[ -e "$ROOT/netx" ] && not_ok "after the failure: no state left" || ok "after the failure: no state left"
tc -n "$NS" qdisc del dev eth0 ingress

# --- 6. Docker / Podman bridge networking ----------------------------------
skip "docker bridge network into the VM" "the test dockerd runs with --iptables=false --bridge=none" \
    "(tests/clients/lib.sh start_dockerd): no bridge network to attach to"

if ! command -v podman >/dev/null || ! command -v conmon >/dev/null; then
    skip "podman bridge network into the VM" "podman or conmon is not installed"
    exit 0
fi
if ! why=$(clients_runtime); then
    skip "podman bridge network into the VM" "$why"
    exit 0
fi
clients_runtime >/dev/null
D=$WORK/podman
mkdir -p "$D/storage" "$D/run" "$D/tmp" "$D/net" "$D/logs"
RT=$(clients_runtime_wrapper "$D/logs")
pm() {
    tmo podman --root "$D/storage" --runroot "$D/run" --tmpdir "$D/tmp" \
        --network-config-dir "$D/net" --storage-driver overlay \
        --runtime "$RT" --cgroup-manager cgroupfs --events-backend file "$@" 2>>"$D/logs/podman.log"
}
BR=moatbr$X
# the CNI firewall plugin leaves its (empty) base chains: remove them if
# this test made them
if command -v iptables >/dev/null && ! iptables -S CNI-FORWARD >/dev/null 2>&1; then
    clients_on_exit "iptables -D FORWARD -m comment --comment 'CNI firewall plugin rules' -j CNI-FORWARD; iptables -F CNI-FORWARD; iptables -X CNI-FORWARD; iptables -F CNI-ADMIN; iptables -X CNI-ADMIN"
fi
clients_on_exit "pm system reset -f"
clients_on_exit "pm network rm -f $BR"
clients_on_exit "pm rm -af -t 2"
clients_on_exit "keep_logs net-podman '$D/logs'"
# a server on the bridge's gateway address: bound to every address, since
# the bridge appears with the first container
python3 -m http.server --bind 0.0.0.0 --directory "$WORK/www" $((PORT + 1)) >"$WORK/http2.log" 2>&1 &
clients_on_exit "kill $!"
archive=$(clients_image_archive)
if ! pm load -i "$archive" >/dev/null ||
    ! pm network create --subnet 10.202.$X.0/24 --gateway 10.202.$X.1 $BR >/dev/null; then
    not_ok "podman: load the image and create bridge network $BR"
    diag "$(tail -5 "$D/logs/podman.log")"
    exit 0
fi
brdev=$(pm network inspect $BR --format '{{.NetworkInterface}}')
[ -n "$brdev" ] && clients_on_exit "ip link del $brdev"
out=$(pm run --rm --network $BR --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$CLIENTS_IMAGE" \
    sh -c "ip -o addr show dev eth0; echo token=\$(timeout 20 wget -q -O - http://10.202.$X.1:$((PORT + 1))/token.txt)")
rc=$?
expect_eq "podman --network $BR (CNI bridge): exits 0" 0 "$rc"
[ "$rc" -ne 0 ] && diag "$(tail -5 "$D/logs/podman.log")"
case "$out" in *"inet 10.202.$X."*) ok "podman bridge: eth0 has an address of 10.202.$X.0/24 in the guest" ;;
*) not_ok "podman bridge: eth0 has an address of 10.202.$X.0/24 in the guest"; diag "$out" ;; esac
expect_eq "podman bridge: wget reaches the host through the bridge" "moat-net-token-$X" \
    "$(echo "$out" | sed -n 's/^token=//p')"
done_testing
