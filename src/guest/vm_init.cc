// egg-init vm: PID 1 of the micro-VM. See src/guest/init.cc.
#include "guest/guest.h"

namespace egg::guest {

int VmMain(int argc, char** argv) {
  // TODO(security): the micro-VM guest is not finished; see
  // docs/ISOLATION.md.
  Die("vm", "the micro-VM guest is not built yet");
}

}  // namespace egg::guest
