// ValidatePrompt against the error types and messages of ComfyUI's execution.py.
#include <gtest/gtest.h>

#include "nodes.h"

namespace scenefarm::testing::comfy {
namespace {

json Pipeline() {
  return {{"1",
           {{"class_type", "EmptyImage"},
            {"inputs", {{"width", 64}, {"height", 64}, {"batch_size", 2}, {"color", 0}}}}},
          {"2",
           {{"class_type", "SaveImage"},
            {"inputs", {{"images", {"1", 0}}, {"filename_prefix", "run/s"}}}}}};
}

json FirstError(const Validation& v, const std::string& node) {
  return v.node_errors[node]["errors"][0];
}

TEST(ValidatePrompt, AcceptsAValidPipeline) {
  json p = Pipeline();
  Validation v = ValidatePrompt(p);
  EXPECT_TRUE(v.ok);
  EXPECT_EQ(v.good_outputs, std::vector<std::string>{"2"});
  EXPECT_EQ(v.node_errors, json::object());
}

TEST(ValidatePrompt, NodeWithoutClassType) {
  json p = Pipeline();
  p["1"].erase("class_type");
  Validation v = ValidatePrompt(p);
  EXPECT_EQ(v.error["type"], "invalid_prompt");
  EXPECT_EQ(v.error["message"],
            "Cannot execute because a node is missing the class_type property.");
  EXPECT_EQ(v.error["details"], "Node ID '#1'");
}

TEST(ValidatePrompt, NoOutputNode) {
  json p = {{"1", Pipeline()["1"]}};
  Validation v = ValidatePrompt(p);
  EXPECT_EQ(v.error["type"], "prompt_no_outputs");
  EXPECT_EQ(v.error["message"], "Prompt has no outputs");
}

TEST(ValidatePrompt, ValueBelowMinAndAboveMax) {
  json p = Pipeline();
  p["1"]["inputs"]["width"] = 0;
  Validation v = ValidatePrompt(p);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.error["type"], "prompt_outputs_failed_validation");
  EXPECT_EQ(FirstError(v, "1")["type"], "value_smaller_than_min");
  EXPECT_EQ(FirstError(v, "1")["message"], "Value 0 smaller than min of 1");
  EXPECT_EQ(v.node_errors["1"]["dependent_outputs"], json({"2"}));
  p = Pipeline();
  p["1"]["inputs"]["batch_size"] = 5000;
  v = ValidatePrompt(p);
  EXPECT_EQ(FirstError(v, "1")["type"], "value_bigger_than_max");
  EXPECT_EQ(FirstError(v, "1")["message"], "Value 5000 bigger than max of 4096");
}

TEST(ValidatePrompt, UnconvertibleValue) {
  json p = Pipeline();
  p["1"]["inputs"]["height"] = "tall";
  Validation v = ValidatePrompt(p);
  EXPECT_EQ(FirstError(v, "1")["type"], "invalid_input_type");
  EXPECT_EQ(FirstError(v, "1")["message"], "Failed to convert an input value to a INT value");
}

TEST(ValidatePrompt, NumericStringsAreConvertedAsPythonWould) {
  json p = Pipeline();
  p["1"]["inputs"]["height"] = "32";
  p["1"]["inputs"]["width"] = 16.9;
  ASSERT_TRUE(ValidatePrompt(p).ok);
  EXPECT_EQ(p["1"]["inputs"]["height"], 32);
  EXPECT_EQ(p["1"]["inputs"]["width"], 16);
}

TEST(ValidatePrompt, BadLinksAndTypeMismatch) {
  json p = Pipeline();
  p["2"]["inputs"]["images"] = {"1", 0, 5};
  Validation v = ValidatePrompt(p);
  EXPECT_EQ(FirstError(v, "2")["type"], "bad_linked_input");
  p = Pipeline();
  p["3"] = {{"class_type", "SaveImage"},
            {"inputs", {{"images", {"2", 0}}, {"filename_prefix", "x"}}}};
  v = ValidatePrompt(p);  // SaveImage has no outputs: slot 0 does not exist
  EXPECT_TRUE(v.ok);      // output 2 is still good
  EXPECT_EQ(v.good_outputs, std::vector<std::string>{"2"});
  EXPECT_EQ(FirstError(v, "3")["type"], "exception_during_validation");
  p = Pipeline();
  p["2"]["inputs"]["images"] = {"9", 0};
  v = ValidatePrompt(p);
  EXPECT_EQ(FirstError(v, "2")["type"], "exception_during_validation");
  EXPECT_EQ(FirstError(v, "2")["details"], "'9'");
}

TEST(ValidatePrompt, UpstreamErrorIsReportedOnTheUpstreamNodeOnly) {
  json p = Pipeline();
  p["1"]["inputs"].erase("color");
  Validation v = ValidatePrompt(p);
  EXPECT_EQ(v.error["type"], "prompt_outputs_failed_validation");
  EXPECT_EQ(FirstError(v, "1")["type"], "required_input_missing");
  EXPECT_EQ(FirstError(v, "1")["details"], "color");
  EXPECT_FALSE(v.node_errors.contains("2"));
}

TEST(ValidatePrompt, ReturnTypeMismatch) {
  json p = Pipeline();
  p["3"] = {
      {"class_type", "ScenefarmTestSource"},
      {"inputs",
       {{"frames", 1}, {"width", 8}, {"height", 8}, {"render_ms_per_frame", 0}, {"seed", 0}}}};
  p["2"]["inputs"]["filename_prefix"] = {"3", 0};  // an IMAGE into a STRING input
  Validation v = ValidatePrompt(p);
  EXPECT_EQ(FirstError(v, "2")["type"], "return_type_mismatch");
  EXPECT_EQ(FirstError(v, "2")["details"], "filename_prefix, IMAGE != STRING");
}

}  // namespace
}  // namespace scenefarm::testing::comfy
