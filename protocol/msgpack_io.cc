// See msgpack_io.h.
#include "protocol/msgpack_io.h"

#include <cmath>
#include <limits>

namespace rma::proto::internal {

MapWriter::MapWriter(std::string* out)
    : out_(out), sink_(out), packer_(sink_), header_pos_(out->size()) {
  static constexpr char kMap32Header[5] = {'\xdf', 0, 0, 0, 0};
  out_->append(kMap32Header, sizeof kMap32Header);
}

MapWriter::~MapWriter() {
  char* p = out_->data() + header_pos_ + 1;
  p[0] = static_cast<char>((count_ >> 24) & 0xff);
  p[1] = static_cast<char>((count_ >> 16) & 0xff);
  p[2] = static_cast<char>((count_ >> 8) & 0xff);
  p[3] = static_cast<char>(count_ & 0xff);
}

void MapWriter::Key(std::string_view key) {
  packer_.pack_str(static_cast<uint32_t>(key.size()));
  packer_.pack_str_body(key.data(), static_cast<uint32_t>(key.size()));
  ++count_;
}

void MapWriter::Str(std::string_view key, std::string_view value) {
  Key(key);
  packer_.pack_str(static_cast<uint32_t>(value.size()));
  packer_.pack_str_body(value.data(), static_cast<uint32_t>(value.size()));
}

void MapWriter::Bin(std::string_view key, std::string_view value) {
  Key(key);
  packer_.pack_bin(static_cast<uint32_t>(value.size()));
  packer_.pack_bin_body(value.data(), static_cast<uint32_t>(value.size()));
}

void MapWriter::U64(std::string_view key, uint64_t value) {
  Key(key);
  packer_.pack_uint64(value);
}

void MapWriter::I64(std::string_view key, int64_t value) {
  Key(key);
  packer_.pack_int64(value);
}

void MapWriter::Double(std::string_view key, double value) {
  Key(key);
  packer_.pack_double(value);
}

void MapWriter::Bool(std::string_view key, bool value) {
  Key(key);
  if (value) {
    packer_.pack_true();
  } else {
    packer_.pack_false();
  }
}

void MapWriter::StrMap(std::string_view key, const std::map<std::string, std::string>& value) {
  Key(key);
  packer_.pack_map(static_cast<uint32_t>(value.size()));
  for (const auto& [k, v] : value) {
    packer_.pack_str(static_cast<uint32_t>(k.size()));
    packer_.pack_str_body(k.data(), static_cast<uint32_t>(k.size()));
    packer_.pack_str(static_cast<uint32_t>(v.size()));
    packer_.pack_str_body(v.data(), static_cast<uint32_t>(v.size()));
  }
}

namespace {
Status WrongType(std::string_view field, std::string_view expected) {
  return Status::InvalidArgument("field '" + std::string(field) + "' must be " +
                                 std::string(expected));
}
Status TooLong(std::string_view field, size_t max_bytes) {
  return Status::InvalidArgument("field '" + std::string(field) + "' is longer than " +
                                 std::to_string(max_bytes) + " bytes");
}
}  // namespace

Status MissingField(std::string_view message, std::string_view field) {
  return Status::InvalidArgument(std::string(message) + ": required field '" + std::string(field) +
                                 "' is missing");
}

Status ReadStr(const msgpack::object& v, std::string_view field, size_t max_bytes,
               std::string* out) {
  if (v.type != msgpack::type::STR) return WrongType(field, "a string");
  if (v.via.str.size > max_bytes) return TooLong(field, max_bytes);
  out->assign(v.via.str.ptr, v.via.str.size);
  return Status::Ok();
}

Status ReadBin(const msgpack::object& v, std::string_view field, size_t max_bytes,
               std::string* out) {
  if (v.type == msgpack::type::BIN) {
    if (v.via.bin.size > max_bytes) return TooLong(field, max_bytes);
    out->assign(v.via.bin.ptr, v.via.bin.size);
    return Status::Ok();
  }
  if (v.type == msgpack::type::STR) return ReadStr(v, field, max_bytes, out);
  return WrongType(field, "binary or a string");
}

Status ReadU64(const msgpack::object& v, std::string_view field, uint64_t max, uint64_t* out) {
  if (v.type != msgpack::type::POSITIVE_INTEGER) return WrongType(field, "a non-negative integer");
  if (v.via.u64 > max) {
    return Status::InvalidArgument("field '" + std::string(field) + "' must be at most " +
                                   std::to_string(max));
  }
  *out = v.via.u64;
  return Status::Ok();
}

Status ReadU32(const msgpack::object& v, std::string_view field, uint32_t max, uint32_t* out) {
  uint64_t value = 0;
  RMA_RETURN_IF_ERROR(ReadU64(v, field, max, &value));
  *out = static_cast<uint32_t>(value);
  return Status::Ok();
}

Status ReadI64(const msgpack::object& v, std::string_view field, int64_t* out) {
  if (v.type == msgpack::type::NEGATIVE_INTEGER) {
    *out = v.via.i64;
    return Status::Ok();
  }
  if (v.type == msgpack::type::POSITIVE_INTEGER) {
    if (v.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Status::InvalidArgument("field '" + std::string(field) + "' is out of range");
    }
    *out = static_cast<int64_t>(v.via.u64);
    return Status::Ok();
  }
  return WrongType(field, "an integer");
}

Status ReadDouble(const msgpack::object& v, std::string_view field, double* out) {
  switch (v.type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      if (!std::isfinite(v.via.f64)) return WrongType(field, "a finite number");
      *out = v.via.f64;
      return Status::Ok();
    case msgpack::type::POSITIVE_INTEGER:
      *out = static_cast<double>(v.via.u64);
      return Status::Ok();
    case msgpack::type::NEGATIVE_INTEGER:
      *out = static_cast<double>(v.via.i64);
      return Status::Ok();
    default:
      return WrongType(field, "a number");
  }
}

Status ReadBool(const msgpack::object& v, std::string_view field, bool* out) {
  if (v.type != msgpack::type::BOOLEAN) return WrongType(field, "a boolean");
  *out = v.via.boolean;
  return Status::Ok();
}

Status ReadStrMap(const msgpack::object& v, std::string_view field, size_t max_bytes,
                  std::map<std::string, std::string>* out) {
  if (v.type != msgpack::type::MAP) return WrongType(field, "a map of strings");
  out->clear();
  const msgpack::object_map& m = v.via.map;
  for (uint32_t i = 0; i < m.size; ++i) {
    std::string key;
    std::string value;
    RMA_RETURN_IF_ERROR(ReadStr(m.ptr[i].key, field, max_bytes, &key));
    RMA_RETURN_IF_ERROR(ReadStr(m.ptr[i].val, field, max_bytes, &value));
    (*out)[std::move(key)] = std::move(value);
  }
  return Status::Ok();
}

Result<size_t> MsgpackObjectBytes(std::string_view data) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t n = data.size();
  size_t pos = 0;
  uint64_t pending = 1;  // objects still to skip; a container adds its items
  auto be = [&](size_t at, size_t bytes) -> uint64_t {
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i) v = (v << 8) | p[at + i];
    return v;
  };
  while (pending > 0) {
    if (pos >= n) return Status::InvalidArgument("truncated msgpack body");
    const uint8_t b = p[pos];
    uint64_t head = 1;      // bytes of the type and length
    uint64_t payload = 0;   // bytes after them
    uint64_t children = 0;  // items that follow
    size_t len_bytes = 0;   // size of a big-endian length after the type byte
    uint64_t extra = 0;     // an ext's type byte
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
    } else if (b <= 0x8f) {
      children = 2ull * (b & 0x0f);
    } else if (b <= 0x9f) {
      children = b & 0x0f;
    } else if (b <= 0xbf) {
      payload = b & 0x1f;
    } else {
      switch (b) {
        case 0xc4:
        case 0xd9:
          len_bytes = 1;
          break;  // bin8, str8
        case 0xc5:
        case 0xda:
          len_bytes = 2;
          break;  // bin16, str16
        case 0xc6:
        case 0xdb:
          len_bytes = 4;
          break;  // bin32, str32
        case 0xc7:
          len_bytes = 1;
          extra = 1;
          break;  // ext8
        case 0xc8:
          len_bytes = 2;
          extra = 1;
          break;  // ext16
        case 0xc9:
          len_bytes = 4;
          extra = 1;
          break;  // ext32
        case 0xca:
          payload = 4;
          break;  // float32
        case 0xcb:
          payload = 8;
          break;  // float64
        case 0xcc:
        case 0xd0:
          payload = 1;
          break;  // (u)int8
        case 0xcd:
        case 0xd1:
          payload = 2;
          break;
        case 0xce:
        case 0xd2:
          payload = 4;
          break;
        case 0xcf:
        case 0xd3:
          payload = 8;
          break;
        case 0xd4:
          payload = 2;
          break;  // fixext1..16
        case 0xd5:
          payload = 3;
          break;
        case 0xd6:
          payload = 5;
          break;
        case 0xd7:
          payload = 9;
          break;
        case 0xd8:
          payload = 17;
          break;
        case 0xdc:
        case 0xde:
          len_bytes = 2;
          break;  // array16, map16
        case 0xdd:
        case 0xdf:
          len_bytes = 4;
          break;  // array32, map32
        default:
          return Status::InvalidArgument("malformed msgpack body: byte 0xc1");
      }
      if (len_bytes > 0) {
        if (pos + 1 + len_bytes > n) return Status::InvalidArgument("truncated msgpack body");
        const uint64_t len = be(pos + 1, len_bytes);
        head = 1 + len_bytes + extra;
        if (b == 0xdc || b == 0xdd) {
          children = len;
        } else if (b == 0xde || b == 0xdf) {
          children = 2 * len;
        } else {
          payload = len;
        }
      }
    }
    if (head + payload > n - pos) return Status::InvalidArgument("truncated msgpack body");
    pos += head + payload;
    --pending;
    // Every item takes at least a byte: more announced than bytes left is a lie, refused before
    // the count can grow without bound.
    if (children > n - pos || pending + children > n - pos + 1) {
      return Status::InvalidArgument("truncated msgpack body");
    }
    pending += children;
  }
  return pos;
}

}  // namespace rma::proto::internal
