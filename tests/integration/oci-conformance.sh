#!/bin/bash
# The OCI conformance suite (tests/oci/) against moat, runc and crun in one
# run, as TAP for make check:
#   - one line per check moat runs: a failure is a failure, except the
#     checks docs/oci-conformance.md lists as impossible for a VM runtime,
#     which are reported as skips with the documented reason;
#   - one line saying moat passes at least as many checks as runc.
# The side-by-side table is printed as TAP comments.
cd "$(dirname "$0")/../.."
source tests/lib.sh

# Checks a VM runtime cannot pass (docs/oci-conformance.md says why).
declare -A KNOWN=(
    [ns_inherit_net]="a VM runtime cannot put the container in the host's network namespace"
    [ns_join_net_path]="a host network namespace cannot be joined from inside the VM"
)

logs=build/oci
table=$(OCI_LOGDIR=$logs ./tests/oci/compare.sh 2>&1)
echo "$table" | sed 's/^/# /'
if [ ! -f "$logs/moat.tap" ]; then
    not_ok "OCI suite ran against moat"
    exit 0
fi
while IFS= read -r line; do
    case "$line" in
    "ok "*"# SKIP"*) skip "oci: ${line#*- }" ;;
    "ok "*) ok "oci: ${line#*- }" ;;
    "not ok "*)
        name=${line#*- }
        name=${name%% *}
        if [ -n "${KNOWN[$name]:-}" ]; then
            skip "oci: $name" "${KNOWN[$name]} (docs/oci-conformance.md)"
        else
            not_ok "oci: $name"
            grep -A3 -F "$line" "$logs/moat.tap" | tail -n +2 | grep '^#' | sed 's/^/  /'
        fi ;;
    esac
done < <(grep -E '^(ok|not ok) [0-9]+ ' "$logs/moat.tap")

count() { grep -cE "$2" "$logs/$1.tap" 2>/dev/null || echo 0; }
m=$(count moat '^ok [0-9]+ - [^#]*$')
r=$(count runc '^ok [0-9]+ - [^#]*$')
if [ -f "$logs/runc.tap" ] && [ "$m" -ge "$r" ]; then
    ok "moat passes at least as many OCI checks as runc ($m vs $r)"
else
    not_ok "moat passes at least as many OCI checks as runc ($m vs $r)"
fi
done_testing
