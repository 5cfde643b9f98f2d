#!/bin/bash
# The guest clock and hostname checks (tests/integration/clock.sh) under
# moat-vmm, where the guest's clocksource is kvm-clock. Needs hardware
# virtualization; elsewhere it skips and says why.
MOAT_VMM_SCRIPT=clock.sh exec bash "$(dirname "$0")/run-moat-vmm.sh"
