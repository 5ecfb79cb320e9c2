// The encoder and the decoder of every protocol body. Neither knows any message: both walk the
// field tables of message_fields.h — FieldWriter appends each field to a msgpack map, FieldReader
// finds each field in a decoded map and checks it against its rule. See codec.h for the guarantees
// and docs/protocol.md for the tables.
#include "protocol/codec.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <typeinfo>

#include "protocol/message_fields.h"
#include "protocol/msgpack_io.h"

namespace rma::proto {

using internal::FieldRule;
using internal::MapWriter;

namespace {

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

// ---- Encoding ----------------------------------------------------------------------------------

// Writes the fields of one message into one msgpack map. A field is written when its rule requires
// it or when it differs from its default (the wire's "optional fields are left out" convention).
class FieldWriter {
 public:
  explicit FieldWriter(std::string* out) : w_(out) {}

  void U32(std::string_view k, uint32_t v, const FieldRule& r) { U64(k, v, r); }
  void U64(std::string_view k, uint64_t v, const FieldRule& r) {
    if (Wanted(r, v != 0)) w_.U64(k, v);
  }
  void I64(std::string_view k, int64_t v, const FieldRule& r) {
    if (Wanted(r, v != 0)) w_.I64(k, v);
  }
  void F64(std::string_view k, double v, const FieldRule& r) {
    if (Wanted(r, v != 0)) w_.Double(k, v);
  }
  void Bool(std::string_view k, bool v, const FieldRule& r) {
    if (Wanted(r, v != r.default_true)) w_.Bool(k, v);
  }
  void Str(std::string_view k, const std::string& v, const FieldRule& r) {
    if (Wanted(r, !v.empty())) w_.Str(k, v);
  }
  void Bin(std::string_view k, const Bytes& v, const FieldRule& r) {
    if (Wanted(r, !v.empty())) w_.Bin(k, v.view());
  }
  void Id(std::string_view k, TaskId v, const FieldRule& r) { U64(k, v.value(), r); }
  template <typename E, typename NameFn, typename ParseFn>
  void Enum(std::string_view k, E v, const FieldRule& r, NameFn name, ParseFn) {
    if (Wanted(r, v != E{})) w_.Str(k, name(v));
  }
  void StrMap(std::string_view k, const std::map<std::string, std::string>& v, const FieldRule& r) {
    if (Wanted(r, !v.empty())) w_.StrMap(k, v);
  }
  void StrList(std::string_view k, const std::vector<std::string>& v, const FieldRule& r) {
    if (!Wanted(r, !v.empty())) return;
    w_.Key(k);
    w_.packer().pack_array(static_cast<uint32_t>(v.size()));
    for (const std::string& s : v) w_.packer().pack(s);
  }
  template <typename T>
  void Object(std::string_view k, const T& v, const FieldRule&) {
    w_.Key(k);
    Write(v, w_.out());
  }
  template <typename T>
  void OptObject(std::string_view k, const std::optional<T>& v) {
    if (v) Object(k, *v, {});
  }
  template <typename T>
  void List(std::string_view k, const std::vector<T>& v, const FieldRule& r) {
    if (!Wanted(r, !v.empty())) return;
    w_.Key(k);
    w_.packer().pack_array(static_cast<uint32_t>(v.size()));
    for (const T& item : v) Write(item, w_.out());
  }
  void Json(std::string_view k, const nlohmann::json& v) {
    w_.Key(k);
    if (v.is_null()) {
      w_.packer().pack_nil();
      return;
    }
    // nlohmann writes one msgpack value; msgpack values concatenate, so it becomes this field's.
    std::vector<uint8_t> packed = nlohmann::json::to_msgpack(v);
    w_.out()->append(reinterpret_cast<const char*>(packed.data()), packed.size());
  }

  template <typename T>
  static void Write(const T& message, std::string* out) {
    FieldWriter writer(out);
    internal::Fields(writer, message);
  }

 private:
  static bool Wanted(const FieldRule& r, bool not_default) {
    return r.required || r.always || not_default;
  }
  MapWriter w_;
};

// ---- Decoding ----------------------------------------------------------------------------------

// The keys of one message's fields in table order, so a body is decoded in one pass over its keys.
class KeyIndex {
 public:
  static constexpr size_t kMaxFields = 32;

  template <typename T>
  static const KeyIndex& Of() {
    static const KeyIndex index = [] {
      KeyIndex i;
      T sample{};
      internal::Fields(i, sample);
      i.Seal();
      return i;
    }();
    return index;
  }

  // The visitor interface: every field method records its key.
  template <typename T>
  void U32(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void U64(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void I64(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void F64(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void Bool(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void Str(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void Bin(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void Id(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T, typename NameFn, typename ParseFn>
  void Enum(std::string_view k, T&, const FieldRule&, NameFn, ParseFn) {
    keys_.push_back(k);
  }
  template <typename T>
  void StrMap(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void StrList(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void Object(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void OptObject(std::string_view k, T&) {
    keys_.push_back(k);
  }
  template <typename T>
  void List(std::string_view k, T&, const FieldRule&) {
    keys_.push_back(k);
  }
  template <typename T>
  void Json(std::string_view k, T&) {
    keys_.push_back(k);
  }

  // The field number of `key`, or -1. Searches from field `from` on, then from the start: a peer
  // that writes fields in table order (rma's own encoder does) finds each key at once, and keys of
  // different lengths are told apart without looking at their bytes.
  int Find(std::string_view key, size_t from) const {
    const size_t n = keys_.size();
    for (size_t step = 0, f = from < n ? from : 0; step < n; ++step, f = f + 1 == n ? 0 : f + 1) {
      const std::string_view candidate = keys_[f];
      if (candidate.size() == key.size() &&
          std::memcmp(candidate.data(), key.data(), key.size()) == 0) {
        return static_cast<int>(f);
      }
    }
    return -1;
  }
  size_t size() const { return keys_.size(); }
  std::string_view key(size_t i) const { return keys_[i]; }

 private:
  void Seal() {
    RMA_CHECK(keys_.size() <= kMaxFields) << "a message has more than " << kMaxFields << " fields";
  }

  std::vector<std::string_view> keys_;
};

// Reads the fields of one message out of one decoded msgpack map: one pass over the map's keys
// files each value under its field (KeyIndex), then the field table is walked in order and each
// field takes its value. The first failure is kept and every later field is skipped; status()
// reports it. Keys the table does not name are ignored, and a nil value counts as absent (peers in
// dynamic languages may send None).
class FieldReader {
 public:
  FieldReader(const msgpack::object& map, const KeyIndex& index, std::string_view what,
              std::string path, const Limits& l)
      : index_(index), what_(what), path_(std::move(path)), limits_(l) {
    if (map.type != msgpack::type::MAP) {
      status_ = Status::InvalidArgument(
          (path_.empty() ? std::string(what_) : "field '" + path_ + "'") + " must be a map");
      return;
    }
    std::fill_n(values_.begin(), index_.size(), nullptr);
    const msgpack::object_map& m = map.via.map;
    size_t next = 0;  // where the next key most likely is
    for (uint32_t i = 0; i < m.size; ++i) {
      const msgpack::object_kv& kv = m.ptr[i];
      if (kv.key.type != msgpack::type::STR) {
        status_ = Status::InvalidArgument(std::string(what_) + " has a key that is not a string");
        return;
      }
      const std::string_view key(kv.key.via.str.ptr, kv.key.via.str.size);
      const int f = index_.Find(key, next);
      if (f >= 0) next = static_cast<size_t>(f) + 1;
      if (f >= 0 && kv.val.type != msgpack::type::NIL) {
        values_[static_cast<size_t>(f)] = &kv.val;  // a repeated key: the last one counts
      }
    }
  }
  const Status& status() const { return status_; }

  void U32(std::string_view k, uint32_t& out, const FieldRule& r) {
    uint64_t v = 0;
    if (ReadUnsigned(k, &v, r, internal::kU32Max)) out = static_cast<uint32_t>(v);
  }
  void U64(std::string_view k, uint64_t& out, const FieldRule& r) {
    ReadUnsigned(k, &out, r, kU64Max);
  }
  void I64(std::string_view k, int64_t& out, const FieldRule& r) {
    const msgpack::object* v = Next(k, r);
    if (v == nullptr) return;
    if (v->type == msgpack::type::NEGATIVE_INTEGER) [[likely]] {
      out = v->via.i64;
      return;
    }
    Keep(internal::ReadI64(*v, k, &out), k);
  }
  void F64(std::string_view k, double& out, const FieldRule& r) {
    const msgpack::object* v = Next(k, r);
    if (v == nullptr || !Keep(internal::ReadDouble(*v, k, &out), k)) return;
    if (r.non_negative && out < 0) Fail(k, "must not be negative");
  }
  void Bool(std::string_view k, bool& out, const FieldRule& r) {
    const msgpack::object* v = Next(k, r);
    if (v == nullptr) return;
    if (v->type == msgpack::type::BOOLEAN) [[likely]] {
      out = v->via.boolean;
      return;
    }
    Keep(internal::ReadBool(*v, k, &out), k);
  }
  void Str(std::string_view k, std::string& out, const FieldRule& r) {
    const msgpack::object* v = Next(k, r);
    if (v == nullptr) return;
    size_t max = r.max_bytes > 0 ? std::min(r.max_bytes, limits_.max_string_bytes)
                                 : limits_.max_string_bytes;
    if (v->type == msgpack::type::STR && v->via.str.size <= max) [[likely]] {
      out.assign(v->via.str.ptr, v->via.str.size);
    } else if (!Keep(internal::ReadStr(*v, k, max, &out), k)) {
      return;
    }
    if (r.required && out.empty()) return Fail(k, "is empty");
    if (r.check != nullptr && !out.empty()) {
      Status s = r.check(out);
      if (!s.ok()) Fail(k, s.message());
    }
  }
  void Bin(std::string_view k, Bytes& out, const FieldRule& r) {
    const msgpack::object* v = Next(k, r);
    if (v == nullptr) return;
    // bin, or a str (a text payload from a dynamic language is fine): copied once, into its
    // shared buffer.
    size_t max = r.max_bytes > 0 ? r.max_bytes : limits_.max_payload_bytes;
    const char* data = nullptr;
    size_t size = 0;
    if (v->type == msgpack::type::BIN) {
      data = v->via.bin.ptr;
      size = v->via.bin.size;
    } else if (v->type == msgpack::type::STR) {
      data = v->via.str.ptr;
      size = v->via.str.size;
    } else {
      return Fail(k, "must be binary or a string");
    }
    if (size > max) return Fail(k, "is longer than " + std::to_string(max) + " bytes");
    out = Bytes::Copy(data, size);
  }
  void Id(std::string_view k, TaskId& out, const FieldRule& r) {
    uint64_t v = 0;
    FieldRule nonzero = r;
    nonzero.min = std::max<uint64_t>(r.min, 1);
    if (ReadUnsigned(k, &v, nonzero, kU64Max)) out = TaskId(v);
  }
  template <typename E, typename NameFn, typename ParseFn>
  void Enum(std::string_view k, E& out, const FieldRule& r, NameFn, ParseFn parse) {
    const msgpack::object* v = Next(k, r);
    if (v == nullptr) return;
    if (v->type != msgpack::type::STR || v->via.str.size > 32) {
      return Fail(k, "must be a string naming one of its values");
    }
    const std::string_view name(v->via.str.ptr, v->via.str.size);
    auto parsed = parse(name);
    if (!parsed) return Fail(k, "has unknown value '" + std::string(name) + "'");
    out = *parsed;
  }
  void StrMap(std::string_view k, std::map<std::string, std::string>& out, const FieldRule& r) {
    if (const msgpack::object* v = Next(k, r)) {
      Keep(internal::ReadStrMap(*v, k, limits_.max_string_bytes, &out), k);
    }
  }
  void StrList(std::string_view k, std::vector<std::string>& out, const FieldRule& r) {
    const msgpack::object* v = Next(k, r);
    if (v == nullptr) return;
    size_t max = r.max_bytes > 0 ? r.max_bytes : limits_.max_string_bytes;
    const size_t max_items =
        r.max_items > 0 ? std::min(r.max_items, limits_.max_array) : limits_.max_array;
    Keep(internal::ForEachItem(*v, k, max_items,
                               [&](uint32_t, const msgpack::object& item) -> Status {
                                 std::string s;
                                 RMA_RETURN_IF_ERROR(internal::ReadStr(item, k, max, &s));
                                 if (r.check != nullptr) {
                                   Status bad = r.check(s);
                                   if (!bad.ok()) {
                                     return Status::InvalidArgument("field '" + std::string(k) +
                                                                    "': " + bad.message());
                                   }
                                 }
                                 out.push_back(std::move(s));
                                 return Status::Ok();
                               }),
         k);
  }
  template <typename T>
  void Object(std::string_view k, T& out, const FieldRule& r) {
    if (const msgpack::object* v = Next(k, r)) Keep(Read(*v, what_, Name(k), limits_, &out));
  }
  template <typename T>
  void OptObject(std::string_view k, std::optional<T>& out) {
    const msgpack::object* v = Next(k, {});
    if (v == nullptr) return;
    out.emplace();
    Keep(Read(*v, what_, Name(k), limits_, &*out));
  }
  template <typename T>
  void List(std::string_view k, std::vector<T>& out, const FieldRule& r) {
    const msgpack::object* v = Next(k, r);
    if (v == nullptr) return;
    out.clear();
    const std::string item_path = Name(k) + "[]";
    Keep(internal::ForEachItem(*v, k, limits_.max_array,
                               [&](uint32_t, const msgpack::object& item) -> Status {
                                 T value;
                                 RMA_RETURN_IF_ERROR(Read(item, what_, item_path, limits_, &value));
                                 out.push_back(std::move(value));
                                 return Status::Ok();
                               }),
         k);
  }
  void Json(std::string_view k, nlohmann::json& out) {
    if (const msgpack::object* v = Next(k, {})) Keep(ToJson(*v, Name(k), &out));
  }

  // Reads one map into `out`: every field of its table, then its cross-field rules.
  template <typename T>
  static Status Read(const msgpack::object& map, std::string_view what, std::string path,
                     const Limits& l, T* out) {
    FieldReader reader(map, KeyIndex::Of<T>(), what, std::move(path), l);
    if (!reader.status().ok()) return reader.status();
    internal::Fields(reader, *out);
    if (!reader.status().ok()) return reader.status();
    return internal::Validate(*out);
  }

 private:
  // The value of the next field in table order (`k`), or nullptr when it is absent (then a
  // required field is an error).
  [[gnu::always_inline]] const msgpack::object* Next(std::string_view k, const FieldRule& r) {
    const size_t f = next_field_++;
    if (!status_.ok()) [[unlikely]] {
      return nullptr;
    }
#ifndef NDEBUG
    // The table is walked in the order KeyIndex recorded it (both walk the same Fields()): the
    // same literal, field by field. Checked in debug builds; this runs for every field of every
    // body.
    if (f >= index_.size() || index_.key(f).data() != k.data()) OutOfOrder(k);
#endif
    if (values_[f] != nullptr) [[likely]] {
      return values_[f];
    }
    if (r.required) [[unlikely]] {
      Missing(k);
    }
    return nullptr;
  }
  [[gnu::cold, gnu::noinline]] void Missing(std::string_view k) {
    status_ = internal::MissingField(
        path_.empty() ? std::string(what_) : std::string(what_) + " " + path_, k);
  }
  [[noreturn, gnu::cold, gnu::noinline]] static void OutOfOrder(std::string_view k) {
    RMA_CHECK(false) << "field table walked out of order at '" << k << "'";
    std::abort();
  }
  [[gnu::always_inline]] bool ReadUnsigned(std::string_view k, uint64_t* out, const FieldRule& r,
                                           uint64_t type_max) {
    const msgpack::object* v = Next(k, r);
    if (v == nullptr) return false;
    const uint64_t max = std::min(r.max, type_max);
    if (v->type == msgpack::type::POSITIVE_INTEGER && v->via.u64 <= max && v->via.u64 >= r.min)
        [[likely]] {
      *out = v->via.u64;
      return true;
    }
    return UnsignedSlow(*v, k, out, r, max);
  }
  [[gnu::cold, gnu::noinline]] bool UnsignedSlow(const msgpack::object& v, std::string_view k,
                                                 uint64_t* out, const FieldRule& r, uint64_t max) {
    if (!Keep(internal::ReadU64(v, k, max, out), k)) return false;
    if (*out < r.min) {
      Fail(k, "must be at least " + std::to_string(r.min));
      return false;
    }
    return true;
  }
  // The field's name in messages: "cpu_cores", or "capabilities.cpu_cores" inside a nested map.
  std::string Name(std::string_view k) const {
    return path_.empty() ? std::string(k) : path_ + "." + std::string(k);
  }
  // Keeps a failure; one that names the bare key `k` is made to name the field's full path.
  bool Keep(Status s, std::string_view k = {}) {
    if (s.ok()) return status_.ok();
    if (!k.empty() && !path_.empty()) {
      std::string message = s.message();
      const std::string bare = "'" + std::string(k) + "'";
      if (size_t at = message.find(bare); at != std::string::npos) {
        message.replace(at, bare.size(), "'" + Name(k) + "'");
      }
      s = Status(s.code(), std::move(message));
    }
    status_ = std::move(s);
    return false;
  }
  void Fail(std::string_view k, const std::string& message) {
    status_ = Status::InvalidArgument(std::string(what_) + ": field '" + Name(k) + "' " + message);
  }

  // A msgpack value as JSON (admin documents). Map keys must be strings; binary becomes a string.
  static Status ToJson(const msgpack::object& v, const std::string& field, nlohmann::json* out) {
    switch (v.type) {
      case msgpack::type::NIL:
        *out = nullptr;
        return Status::Ok();
      case msgpack::type::BOOLEAN:
        *out = v.via.boolean;
        return Status::Ok();
      case msgpack::type::POSITIVE_INTEGER:
        *out = v.via.u64;
        return Status::Ok();
      case msgpack::type::NEGATIVE_INTEGER:
        *out = v.via.i64;
        return Status::Ok();
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64:
        *out = v.via.f64;
        return Status::Ok();
      case msgpack::type::STR:
        *out = std::string(v.via.str.ptr, v.via.str.size);
        return Status::Ok();
      case msgpack::type::BIN:
        *out = std::string(v.via.bin.ptr, v.via.bin.size);
        return Status::Ok();
      case msgpack::type::ARRAY: {
        *out = nlohmann::json::array();
        for (uint32_t i = 0; i < v.via.array.size; ++i) {
          nlohmann::json item;
          RMA_RETURN_IF_ERROR(ToJson(v.via.array.ptr[i], field, &item));
          out->push_back(std::move(item));
        }
        return Status::Ok();
      }
      case msgpack::type::MAP: {
        *out = nlohmann::json::object();
        for (uint32_t i = 0; i < v.via.map.size; ++i) {
          const msgpack::object_kv& kv = v.via.map.ptr[i];
          if (kv.key.type != msgpack::type::STR) {
            return Status::InvalidArgument("field '" + field + "' has a key that is not a string");
          }
          RMA_RETURN_IF_ERROR(
              ToJson(kv.val, field, &(*out)[std::string(kv.key.via.str.ptr, kv.key.via.str.size)]));
        }
        return Status::Ok();
      }
      default:
        return Status::InvalidArgument("field '" + field + "' holds a msgpack extension");
    }
  }

  const KeyIndex& index_;
  std::string_view what_;  // the message's name, a literal
  std::string path_;
  const Limits& limits_;
  // The value of each field, by field number; only the first index_.size() are set (not
  // zero-initialised as a whole: the reader runs for every body).
  std::array<const msgpack::object*, KeyIndex::kMaxFields> values_;
  size_t next_field_ = 0;
  Status status_;
};

// Bounds the total number of objects and the nesting depth of a body before the tree decoder
// allocates for it: every msgpack object costs the tree decoder ~24 bytes even when it is one byte
// on the wire.
class ShapeCheck : public msgpack::null_visitor {
 public:
  explicit ShapeCheck(const Limits& l) : limits_(l) {}
  bool visit_nil() { return Count(); }
  bool visit_boolean(bool) { return Count(); }
  bool visit_positive_integer(uint64_t) { return Count(); }
  bool visit_negative_integer(int64_t) { return Count(); }
  bool visit_float32(float) { return Count(); }
  bool visit_float64(double) { return Count(); }
  bool visit_str(const char*, uint32_t) { return Count(); }
  bool visit_bin(const char*, uint32_t) { return Count(); }
  bool visit_ext(const char*, uint32_t) { return Count(); }
  bool start_array(uint32_t n) { return Count() && Open(n <= limits_.max_array); }
  bool end_array() { return Close(); }
  bool start_map(uint32_t n) { return Count() && Open(n <= limits_.max_map); }
  bool end_map() { return Close(); }
  bool over_limit() const { return over_limit_; }

 private:
  bool Count() {
    if (++objects_ > limits_.max_objects) over_limit_ = true;
    return !over_limit_;
  }
  bool Open(bool size_ok) {
    if (!size_ok || ++depth_ > limits_.max_depth) over_limit_ = true;
    return !over_limit_;
  }
  bool Close() {
    --depth_;
    return true;
  }
  const Limits& limits_;
  size_t objects_ = 0;
  size_t depth_ = 0;
  bool over_limit_ = false;
};

// Frames smaller than this cannot make the tree decoder allocate more than ~24x their size; larger
// ones get the counting pre-pass first.
constexpr size_t kShapeCheckThreshold = 64 * 1024;

}  // namespace

// ---- Public entry points ---------------------------------------------------------------------

#define RMA_PROTOCOL_MESSAGE(Type, wire_name)                                  \
  void Encode(const Type& m, std::string* out) { FieldWriter::Write(m, out); } \
  Status Decoder::Decode(std::string_view body, Type* out) {                   \
    *out = {};                                                                 \
    auto root = Parse(body);                                                   \
    if (!root.ok()) return root.status().WithContext(wire_name);               \
    return FieldReader::Read(*root, wire_name, std::string(), limits_, out);   \
  }
RMA_PROTOCOL_MESSAGES(RMA_PROTOCOL_MESSAGE)
#undef RMA_PROTOCOL_MESSAGE

Status Decoder::DecodeToWorker(Command command, std::string_view body, ToWorkerMessage* out) {
  auto decode = [&](auto message) -> Status {
    RMA_RETURN_IF_ERROR(Decode(body, &message));
    *out = std::move(message);
    return Status::Ok();
  };
  switch (command) {
    case Command::kWelcome:
      return decode(Welcome{});
    case Command::kTask:
      return decode(TaskAssignment{});
    case Command::kCancel:
      return decode(CancelAttempt{});
    case Command::kError:
      return decode(Error{});
    case Command::kDisconnect:
      if (body.empty()) {
        *out = Disconnect{};
        return Status::Ok();
      }
      return decode(Disconnect{});
    case Command::kHeartbeat:
    case Command::kDrain:
      *out = Bodyless{command};
      return Status::Ok();
    default:
      return Status::InvalidArgument(std::string(CommandName(command)) +
                                     " is not a command the broker sends a worker");
  }
}

Result<msgpack::object> Decoder::Parse(std::string_view body) {
  if (body.empty()) return Status::InvalidArgument("empty body");
  if (body.size() > limits_.max_frame_bytes) {
    return Status::InvalidArgument("body of " + std::to_string(body.size()) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(limits_.max_frame_bytes));
  }
  zone_.clear();
  try {
    if (body.size() > kShapeCheckThreshold) {
      ShapeCheck check(limits_);
      size_t offset = 0;
      bool parsed = msgpack::parse(body.data(), body.size(), offset, check);
      if (check.over_limit()) {
        return Status::InvalidArgument("body exceeds the msgpack object, size or depth limits");
      }
      if (!parsed) return Status::InvalidArgument("malformed msgpack body");
    }
    size_t string_limit = std::max(limits_.max_string_bytes, limits_.max_payload_bytes);
    msgpack::unpack_limit limit(limits_.max_array, limits_.max_map, string_limit,
                                limits_.max_payload_bytes,
                                /*ext=*/0, limits_.max_depth);
    size_t offset = 0;
    bool referenced = false;
    msgpack::object obj = msgpack::unpack(zone_, body.data(), body.size(), offset, referenced,
                                          nullptr, nullptr, limit);
    if (offset != body.size())
      return Status::InvalidArgument("trailing bytes after the msgpack body");
    return obj;
  } catch (const msgpack::insufficient_bytes&) {
    return Status::InvalidArgument("truncated msgpack body");
  } catch (const msgpack::size_overflow&) {
    return Status::InvalidArgument("body exceeds the msgpack size or depth limits");
  } catch (const msgpack::unpack_error& e) {
    return Status::InvalidArgument(std::string("malformed msgpack body: ") + e.what());
  } catch (const std::bad_cast&) {  // msgpack::type_error
    return Status::InvalidArgument("msgpack value of an unexpected type");
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory decoding a body");
  }
}

}  // namespace rma::proto
