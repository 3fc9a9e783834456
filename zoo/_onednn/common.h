// What the handlers of zoo's native library (conv.cc, cin.cc) share.
#pragma once

#include <mutex>

namespace zoo_native {

// Held by every handler while it runs: each runs on all cores (an OpenMP team), and XLA:CPU runs independent
// operations concurrently, so two at once would oversubscribe the cores (conv.cc's header).
std::mutex& OneAtATime();

}  // namespace zoo_native
