// See files.h.
#include "common/files.h"

#include <cstdio>
#include <fstream>

namespace rma {

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    if (!out || !(out << content) || !out.flush())
      return Status::Unavailable("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return Status::Unavailable("cannot rename " + tmp + " to " + path);
  return Status::Ok();
}

}  // namespace rma
