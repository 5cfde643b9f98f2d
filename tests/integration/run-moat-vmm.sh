#!/bin/bash
# The first slice's container checks (tests/integration/run.sh) again, with
# the builtin backend: the lean guest kernel and the agent booted by moat-vmm
# instead of QEMU. clock-moat-vmm.sh runs clock.sh the same way
# (MOAT_VMM_SCRIPT). Needs hardware virtualization; elsewhere it skips and
# says why.
cd "$(dirname "$0")/../.."
source tests/lib.sh
if ! grep -qE '\b(vmx|svm)\b' /proc/cpuinfo; then
    skip "moat-vmm container checks" "host lacks VMX/SVM: /dev/kvm here cannot run a Linux guest (see 'moat check')"
    exit 0
fi
if [ ! -x build/moat-vmm ]; then
    skip "moat-vmm container checks" "build/moat-vmm not built"
    exit 0
fi
MOAT_HYPERVISOR=moat-vmm exec bash tests/integration/${MOAT_VMM_SCRIPT:-run.sh}
