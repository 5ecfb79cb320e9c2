// The encoder and the decoder of every protocol body. Neither knows any message: both walk the
// field tables of message_fields.h — FieldWriter appends each field to a msgpack map, FieldReader
// finds each field in a decoded map and checks it against its rule. See codec.h for the guarantees
// and docs/protocol.md for the tables.
#include "protocol/codec.h"

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

// Reads the fields of one message out of one decoded msgpack map. The first failure is kept and
// every later field is skipped; status() reports it. Keys the table does not name are ignored, and
// a nil value counts as absent (peers in dynamic languages may send None).
class FieldReader {
 public:
  FieldReader(const msgpack::object& map, std::string what, std::string path, const Limits& l)
      : what_(std::move(what)), path_(std::move(path)), limits_(l) {
    if (map.type != msgpack::type::MAP) {
      status_ = Status::InvalidArgument((path_.empty() ? what_ : "field '" + path_ + "'") +
                                        " must be a map");
      return;
    }
    map_ = &map.via.map;
    for (uint32_t i = 0; i < map_->size; ++i) {
      if (map_->ptr[i].key.type != msgpack::type::STR) {
        status_ = Status::InvalidArgument(what_ + " has a key that is not a string");
        return;
      }
    }
  }
  const Status& status() const { return status_; }

  void U32(std::string_view k, uint32_t& out, const FieldRule& r) {
    uint64_t v = 0;
    FieldRule bounded = r;
    bounded.max = std::min<uint64_t>(r.max, internal::kU32Max);
    if (ReadUnsigned(k, &v, bounded)) out = static_cast<uint32_t>(v);
  }
  void U64(std::string_view k, uint64_t& out, const FieldRule& r) { ReadUnsigned(k, &out, r); }
  void I64(std::string_view k, int64_t& out, const FieldRule& r) {
    if (const msgpack::object* v = Find(k, r)) Keep(internal::ReadI64(*v, Name(k), &out));
  }
  void F64(std::string_view k, double& out, const FieldRule& r) {
    const msgpack::object* v = Find(k, r);
    if (v == nullptr || !Keep(internal::ReadDouble(*v, Name(k), &out))) return;
    if (r.non_negative && out < 0) Fail("field '" + Name(k) + "' must not be negative");
  }
  void Bool(std::string_view k, bool& out, const FieldRule& r) {
    if (const msgpack::object* v = Find(k, r)) Keep(internal::ReadBool(*v, Name(k), &out));
  }
  void Str(std::string_view k, std::string& out, const FieldRule& r) {
    const msgpack::object* v = Find(k, r);
    if (v == nullptr) return;
    size_t max = r.max_bytes > 0 ? std::min(r.max_bytes, limits_.max_string_bytes)
                                 : limits_.max_string_bytes;
    if (!Keep(internal::ReadStr(*v, Name(k), max, &out))) return;
    if (r.required && out.empty()) return Fail("field '" + Name(k) + "' is empty");
    if (r.check != nullptr && !out.empty()) {
      Status s = r.check(out);
      if (!s.ok()) Fail("field '" + Name(k) + "': " + s.message());
    }
  }
  void Bin(std::string_view k, Bytes& out, const FieldRule& r) {
    const msgpack::object* v = Find(k, r);
    if (v == nullptr) return;
    std::string bytes;
    size_t max = r.max_bytes > 0 ? r.max_bytes : limits_.max_payload_bytes;
    if (Keep(internal::ReadBin(*v, Name(k), max, &bytes))) out = Bytes(std::move(bytes));
  }
  void Id(std::string_view k, TaskId& out, const FieldRule& r) {
    uint64_t v = 0;
    FieldRule nonzero = r;
    nonzero.min = std::max<uint64_t>(r.min, 1);
    if (ReadUnsigned(k, &v, nonzero)) out = TaskId(v);
  }
  template <typename E, typename NameFn, typename ParseFn>
  void Enum(std::string_view k, E& out, const FieldRule& r, NameFn, ParseFn parse) {
    const msgpack::object* v = Find(k, r);
    if (v == nullptr) return;
    std::string name;
    if (!Keep(internal::ReadStr(*v, Name(k), 32, &name))) return;
    auto parsed = parse(name);
    if (!parsed) return Fail("field '" + Name(k) + "' has unknown value '" + name + "'");
    out = *parsed;
  }
  void StrMap(std::string_view k, std::map<std::string, std::string>& out, const FieldRule& r) {
    if (const msgpack::object* v = Find(k, r)) {
      Keep(internal::ReadStrMap(*v, Name(k), limits_.max_string_bytes, &out));
    }
  }
  void StrList(std::string_view k, std::vector<std::string>& out, const FieldRule& r) {
    const msgpack::object* v = Find(k, r);
    if (v == nullptr) return;
    size_t max = r.max_bytes > 0 ? r.max_bytes : limits_.max_string_bytes;
    Keep(internal::ForEachItem(
        *v, Name(k), limits_.max_array, [&](uint32_t, const msgpack::object& item) -> Status {
          std::string s;
          RMA_RETURN_IF_ERROR(internal::ReadStr(item, Name(k) + "[]", max, &s));
          out.push_back(std::move(s));
          return Status::Ok();
        }));
  }
  template <typename T>
  void Object(std::string_view k, T& out, const FieldRule& r) {
    if (const msgpack::object* v = Find(k, r)) Keep(Read(*v, what_, Name(k), limits_, &out));
  }
  template <typename T>
  void OptObject(std::string_view k, std::optional<T>& out) {
    const msgpack::object* v = Find(k, {});
    if (v == nullptr) return;
    out.emplace();
    Keep(Read(*v, what_, Name(k), limits_, &*out));
  }
  template <typename T>
  void List(std::string_view k, std::vector<T>& out, const FieldRule& r) {
    const msgpack::object* v = Find(k, r);
    if (v == nullptr) return;
    out.clear();
    const std::string item_path = Name(k) + "[]";
    Keep(internal::ForEachItem(*v, Name(k), limits_.max_array,
                               [&](uint32_t, const msgpack::object& item) -> Status {
                                 T value;
                                 RMA_RETURN_IF_ERROR(Read(item, what_, item_path, limits_, &value));
                                 out.push_back(std::move(value));
                                 return Status::Ok();
                               }));
  }
  void Json(std::string_view k, nlohmann::json& out) {
    if (const msgpack::object* v = Find(k, {})) Keep(ToJson(*v, Name(k), &out));
  }

  // Reads one map into `out`: every field of its table, then its cross-field rules.
  template <typename T>
  static Status Read(const msgpack::object& map, const std::string& what, std::string path,
                     const Limits& l, T* out) {
    FieldReader reader(map, what, std::move(path), l);
    if (!reader.status().ok()) return reader.status();
    internal::Fields(reader, *out);
    if (!reader.status().ok()) return reader.status();
    return internal::Validate(*out);
  }

 private:
  // The value of key `k`, or nullptr when it is absent (then a required field is an error).
  const msgpack::object* Find(std::string_view k, const FieldRule& r) {
    if (!status_.ok()) return nullptr;
    for (uint32_t i = 0; i < map_->size; ++i) {
      const msgpack::object_kv& kv = map_->ptr[i];
      if (std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) != k) continue;
      if (kv.val.type == msgpack::type::NIL) break;
      return &kv.val;
    }
    if (r.required) {
      status_ = internal::MissingField(path_.empty() ? what_ : what_ + " " + path_, k);
    }
    return nullptr;
  }
  bool ReadUnsigned(std::string_view k, uint64_t* out, const FieldRule& r) {
    const msgpack::object* v = Find(k, r);
    if (v == nullptr || !Keep(internal::ReadU64(*v, Name(k), r.max, out))) return false;
    if (*out < r.min) {
      Fail("field '" + Name(k) + "' must be at least " + std::to_string(r.min));
      return false;
    }
    return true;
  }
  std::string Name(std::string_view k) const {
    return path_.empty() ? std::string(k) : path_ + "." + std::string(k);
  }
  bool Keep(Status s) {
    if (!s.ok()) status_ = std::move(s);
    return status_.ok();
  }
  void Fail(std::string message) { status_ = Status::InvalidArgument(what_ + ": " + message); }

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

  std::string what_;
  std::string path_;
  const Limits& limits_;
  const msgpack::object_map* map_ = nullptr;
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
