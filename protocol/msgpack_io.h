// Low-level msgpack helpers for codec.cc: a map writer that appends to a std::string and typed
// readers that turn a msgpack::object into a C++ value or an InvalidArgument naming the field.
// Internal to protocol/.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace rma::proto::internal {

// msgpack's packer needs a stream with write(); this one appends to a string.
class StringSink {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  void write(const char* data, size_t size) { out_->append(data, size); }

 private:
  std::string* out_;
};

// Writes one map. The header is a map32 whose count is patched when the writer is destroyed, so
// fields can be written without counting them first (legal msgpack, 4 bytes more than the tightest
// form). Nested maps are written by a nested MapWriter on the same string that goes out of scope
// before the parent writes on.
class MapWriter {
 public:
  explicit MapWriter(std::string* out);
  ~MapWriter();
  MapWriter(const MapWriter&) = delete;
  MapWriter& operator=(const MapWriter&) = delete;

  void Key(std::string_view key);
  void Str(std::string_view key, std::string_view value);
  void Bin(std::string_view key, std::string_view value);
  void U64(std::string_view key, uint64_t value);
  void I64(std::string_view key, int64_t value);
  void Double(std::string_view key, double value);
  void Bool(std::string_view key, bool value);
  void StrMap(std::string_view key, const std::map<std::string, std::string>& value);

  // Writers that leave the field out when it holds its default (the wire's "optional" convention).
  void OptStr(std::string_view key, std::string_view value) {
    if (!value.empty()) Str(key, value);
  }
  void OptBin(std::string_view key, std::string_view value) {
    if (!value.empty()) Bin(key, value);
  }
  void OptU64(std::string_view key, uint64_t value) {
    if (value != 0) U64(key, value);
  }
  void OptI64(std::string_view key, int64_t value) {
    if (value != 0) I64(key, value);
  }
  void OptDouble(std::string_view key, double value) {
    if (value != 0) Double(key, value);
  }

  msgpack::packer<StringSink>& packer() { return packer_; }
  std::string* out() { return out_; }

 private:
  std::string* out_;
  StringSink sink_;
  msgpack::packer<StringSink> packer_;
  size_t header_pos_;
  uint32_t count_ = 0;
};

// Typed readers. `field` names the value in error messages.
Status ReadStr(const msgpack::object& v, std::string_view field, size_t max_bytes,
               std::string* out);
// Accepts bin or str (a text payload from a dynamic language is fine).
Status ReadBin(const msgpack::object& v, std::string_view field, size_t max_bytes,
               std::string* out);
Status ReadU64(const msgpack::object& v, std::string_view field, uint64_t max, uint64_t* out);
Status ReadU32(const msgpack::object& v, std::string_view field, uint32_t max, uint32_t* out);
Status ReadI64(const msgpack::object& v, std::string_view field, int64_t* out);
// Accepts floats and integers; refuses NaN and infinities.
Status ReadDouble(const msgpack::object& v, std::string_view field, double* out);
Status ReadBool(const msgpack::object& v, std::string_view field, bool* out);
Status ReadStrMap(const msgpack::object& v, std::string_view field, size_t max_bytes,
                  std::map<std::string, std::string>* out);
Status MissingField(std::string_view message, std::string_view field);

// The length in bytes of the one msgpack object `data` starts with, read from the type bytes and
// lengths alone (no allocation, no recursion: a count of items still to skip). InvalidArgument for
// a truncated object or a byte msgpack never uses. Packed body frames (frames.h) are split with it.
Result<size_t> MsgpackObjectBytes(std::string_view data);

// Calls fn(key, value) for each pair of a map whose value is not nil (nil means "absent", so peers
// written in dynamic languages may send None). Keys must be strings. `what` names the map in
// errors.
template <typename Fn>
Status ForEachField(const msgpack::object& map, std::string_view what, Fn&& fn) {
  if (map.type != msgpack::type::MAP) {
    return Status::InvalidArgument(std::string(what) + " must be a map");
  }
  const msgpack::object_map& m = map.via.map;
  for (uint32_t i = 0; i < m.size; ++i) {
    const msgpack::object_kv& kv = m.ptr[i];
    if (kv.key.type != msgpack::type::STR) {
      return Status::InvalidArgument(std::string(what) + " has a key that is not a string");
    }
    if (kv.val.type == msgpack::type::NIL) continue;
    std::string_view key(kv.key.via.str.ptr, kv.key.via.str.size);
    RMA_RETURN_IF_ERROR(fn(key, kv.val));
  }
  return Status::Ok();
}

// Calls fn(index, element) for each element of an array of at most max_items.
template <typename Fn>
Status ForEachItem(const msgpack::object& array, std::string_view field, size_t max_items,
                   Fn&& fn) {
  if (array.type != msgpack::type::ARRAY) {
    return Status::InvalidArgument("field '" + std::string(field) + "' must be an array");
  }
  if (array.via.array.size > max_items) {
    return Status::InvalidArgument("field '" + std::string(field) + "' has more than " +
                                   std::to_string(max_items) + " items");
  }
  for (uint32_t i = 0; i < array.via.array.size; ++i) {
    RMA_RETURN_IF_ERROR(fn(i, array.via.array.ptr[i]));
  }
  return Status::Ok();
}

}  // namespace rma::proto::internal
