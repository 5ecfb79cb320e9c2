// The worker's stable identity: a random id created once and kept in <data_dir>/worker_id, so a
// restarted worker is recognised by the broker (totals, dashboard history) as the same machine.
#pragma once

#include <string>

#include "common/status.h"

namespace rma::worker {

// Reads <data_dir>/worker_id, creating the directory and a new id ("w-" + 16 hex digits) when
// missing.
Result<std::string> LoadOrCreateWorkerId(const std::string& data_dir);
// Reads <data_dir>/worker_secret (mode 600), creating it with 32 random bytes (hex) when missing.
// The broker lets a new session take over this worker's id while the old one still looks alive
// only with it (a reconnect after a network drop); nobody else can.
Result<std::string> LoadOrCreateWorkerSecret(const std::string& data_dir);
// $XDG_DATA_HOME/rma-worker, else $HOME/.local/share/rma-worker, else ./rma-worker-data.
std::string DefaultDataDir();

}  // namespace rma::worker
