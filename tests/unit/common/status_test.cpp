#include "scenefarm/status.h"

#include <gtest/gtest.h>

namespace scenefarm {
namespace {

TEST(Status, OkByDefaultAndNamedOtherwise) {
  EXPECT_TRUE(Status().ok());
  EXPECT_EQ(Status().ToString(), "OK");
  const Status s = Status::Unavailable("connect refused");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.ToString(), "UNAVAILABLE: connect refused");
  EXPECT_EQ(Status::InvalidArgument("x").ToString(), "INVALID_ARGUMENT: x");
  EXPECT_EQ(Status::Aborted("lease lost").ToString(), "ABORTED: lease lost");
}

TEST(Result, HoldsAValueOrTheStatus) {
  Result<int> v = 42;
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 42);
  EXPECT_TRUE(v.status().ok());
  Result<int> e = Status::NotFound("no scene s1");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e.status().message(), "no scene s1");
}

}  // namespace
}  // namespace scenefarm
