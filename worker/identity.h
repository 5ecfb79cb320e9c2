// The worker's stable identity: a random id created once and kept in <data_dir>/worker_id, so a
// restarted worker is recognised by the broker (totals, dashboard history) as the same machine;
// the secret that proves a reconnect is this worker; and, with CURVE, its keypair
// (<data_dir>/worker.key, 0600, and worker.key.pub). Called from main before the agent starts.
#pragma once

#include <string>

#include "common/status.h"
#include "protocol/curve_keys.h"

namespace rma::worker {

// Reads <data_dir>/worker_id, creating the directory and a new id ("w-" + 16 hex digits) when
// missing.
Result<std::string> LoadOrCreateWorkerId(const std::string& data_dir);
// Reads <data_dir>/worker_secret (mode 600), creating it with 32 random bytes (hex) when missing.
// The broker lets a new session take over this worker's id while the old one still looks alive
// only with it (a reconnect after a network drop); nobody else can.
Result<std::string> LoadOrCreateWorkerSecret(const std::string& data_dir);
// Reads <data_dir>/worker.key, creating it (and worker.key.pub) with a new keypair when missing.
Result<proto::CurveKeypair> LoadOrCreateWorkerKey(const std::string& data_dir);
// Makes a new keypair and puts it in place of <data_dir>/worker.key (--new-key: the old key was
// revoked or leaked). The secret file is written 0600 through a rename, so a crash leaves the old
// key or the new one, never half of either; worker.key.pub follows it.
Result<proto::CurveKeypair> ReplaceWorkerKey(const std::string& data_dir);
// $XDG_DATA_HOME/rma-worker, else $HOME/.local/share/rma-worker, else ./rma-worker-data.
std::string DefaultDataDir();

}  // namespace rma::worker
