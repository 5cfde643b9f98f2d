#!/bin/sh
# Install every Debian package moat needs to build, test and run.
# Idempotent: packages already present are skipped by apt.
set -eu
PKGS="build-essential pkg-config debhelper dpkg-dev lintian go-md2man man-db bc bison flex libelf-dev libssl-dev xz-utils cpio kmod \
 linux-source-6.12 \
 libseccomp-dev libyajl-dev libinih-dev libcap-dev libprotobuf-c-dev protobuf-c-compiler \
 libcgroup-dev libcmocka-dev qemu-system-x86 busybox-static \
 iproute2 procps psmisc util-linux jq python3 clang-format clang libclang-rt-14-dev runc crun \
 podman conmon containerd docker.io \
 python3-grpcio python3-grpc-tools containernetworking-plugins"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends $missing
else
    echo "install-deps: all packages present"
fi
