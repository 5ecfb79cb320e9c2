// StrongId<Tag, T>: a value type that cannot be mixed up with another id of the same representation
// (Redpanda's named_type). TaskId and WorkerId are defined with it in protocol/ids.h.
#pragma once

#include <compare>
#include <functional>
#include <utility>

namespace rma {

template <typename Tag, typename T>
class StrongId {
 public:
  using ValueType = T;
  StrongId() = default;
  explicit StrongId(T value) : value_(std::move(value)) {}
  const T& value() const { return value_; }
  auto operator<=>(const StrongId&) const = default;
  bool operator==(const StrongId&) const = default;

 private:
  T value_{};
};

}  // namespace rma

template <typename Tag, typename T>
struct std::hash<rma::StrongId<Tag, T>> {
  size_t operator()(const rma::StrongId<Tag, T>& id) const noexcept {
    return std::hash<T>{}(id.value());
  }
};
