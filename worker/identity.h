// The worker's stable identity: a random id created once and kept in <data_dir>/worker_id, so a
// restarted worker is recognised by the broker (totals, dashboard history) as the same machine.
#pragma once

#include <string>

#include "common/status.h"

namespace rma::worker {

// Reads <data_dir>/worker_id, creating the directory and a new id ("w-" + 16 hex digits) when
// missing.
Result<std::string> LoadOrCreateWorkerId(const std::string& data_dir);
// $XDG_DATA_HOME/rma-worker, else $HOME/.local/share/rma-worker, else ./rma-worker-data.
std::string DefaultDataDir();

}  // namespace rma::worker
