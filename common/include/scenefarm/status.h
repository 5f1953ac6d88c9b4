// Errors are values. The code tells the caller what to do next (after absl::StatusCode):
//   kUnavailable / kDeadlineExceeded: retry the failing call with backoff;
//   kInvalidArgument: the input is wrong, retrying cannot help (dead-letter a scene);
//   kAborted: someone else owns the work now (a lease taken over), stop quietly;
//   kNotFound, kFailedPrecondition, kInternal: as in absl.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace scenefarm {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kUnavailable,
  kDeadlineExceeded,
  kAborted,
  kFailedPrecondition,
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

// [[nodiscard]]: an ignored Status is a dropped error; handle it or log it.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status DeadlineExceeded(std::string m) {
    return {StatusCode::kDeadlineExceeded, std::move(m)};
  }
  static Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "UNAVAILABLE: connect to 127.0.0.1:8188 refused"; "OK" when ok().
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status that explains its absence. REQUIRES: a Result built from a Status is
// never built from an ok() one.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok().
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  // Two members rather than a std::variant: GCC 12 reports variant<T, Status> moves as
  // maybe-uninitialized under -O2 -Werror.
  std::optional<T> value_;
  Status status_;
};

}  // namespace scenefarm
