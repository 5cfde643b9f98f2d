#!/bin/bash
# The README's first command: build everything (guest kernel included) and run
# a busybox container inside a microVM with `moat run`. The container prints
# the guest kernel's release, which differs from the host's.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
make -j"$(nproc)" all
make guest
bundle=build/demo-bundle
rm -rf "$bundle"
./scripts/mkbundle.sh "$bundle"
jq '.process.args = ["sh", "-c", "echo \"hello from inside the microVM\"; echo \"guest kernel: $(uname -r)\"; echo \"pid in container: $$\"; echo \"hostname: $(hostname)\"; echo \"guest clock: $(date -u)\""]' \
    "$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"
echo "host kernel:  $(uname -r)"
echo "host clock:   $(date -u)"
echo "+ build/moat run --bundle $bundle moat-demo-$$"
exec build/moat run --bundle "$bundle" "moat-demo-$$"
