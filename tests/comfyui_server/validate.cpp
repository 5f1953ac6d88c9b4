// ComfyUI's validate_prompt / validate_inputs (execution.py), error for error.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "nodes.h"

namespace scenefarm::testing::comfy {
namespace {

// (valid, reasons) per node id, as ComfyUI's `validated` dict; insertion order kept.
struct Validated {
  std::vector<std::string> order;
  std::map<std::string, std::pair<bool, json>> results;
  void Set(const std::string& id, bool ok, json reasons) {
    if (!results.count(id)) order.push_back(id);
    results[id] = {ok, std::move(reasons)};
  }
};

json Reason(const std::string& type, const std::string& message, const std::string& details,
            json extra) {
  return {{"type", type}, {"message", message}, {"details", details}, {"extra_info", extra}};
}

std::string PyStr(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

json InputConfig(const NodeInput& in) {
  return json::array({in.type == "COMBO" ? json(in.choices) : json(in.type), in.options});
}

// Python's int(val) / float(val) on a JSON value; nullopt with the exception text on failure.
std::optional<json> Convert(const NodeInput& in, const json& val, std::string* why) {
  if (in.type == "INT" || in.type == "FLOAT") {
    double d = 0;
    if (val.is_boolean()) {
      d = val.get<bool>() ? 1 : 0;
    } else if (val.is_number()) {
      d = val.get<double>();
      if (val.is_number_integer()) return in.type == "INT" ? val : json(d);
    } else if (val.is_string()) {
      const std::string s = val.get<std::string>();
      char* end = nullptr;
      errno = 0;
      d = in.type == "INT" ? static_cast<double>(std::strtoll(s.c_str(), &end, 10))
                           : std::strtod(s.c_str(), &end);
      while (end && *end == ' ')
        ++end;
      if (s.empty() || end == s.c_str() || *end != '\0' || errno != 0) {
        *why = in.type == "INT" ? "invalid literal for int() with base 10: '" + s + "'"
                                : "could not convert string to float: '" + s + "'";
        return std::nullopt;
      }
    } else {
      *why = std::string(in.type == "INT" ? "int()" : "float()") +
             " argument must be a string or a real number, not '" +
             (val.is_null()     ? "NoneType"
              : val.is_object() ? "dict"
                                : "list") +
             "'";
      return std::nullopt;
    }
    if (in.type == "INT") return json(static_cast<int64_t>(std::trunc(d)));
    return json(d);
  }
  if (in.type == "STRING") return json(PyStr(val));
  if (in.type == "BOOLEAN") {
    return json(!(val.is_null() || val == false || val == 0 || val == "" ||
                  (val.is_structured() && val.empty())));
  }
  return val;  // COMBO: compared as is
}

bool ValidateInputs(json& prompt, const std::string& id, Validated& validated);

// A linked input [node_id, slot]. Returns false (with reasons appended) when it is invalid.
bool CheckLink(json& prompt, const NodeInput& in, const json& val, Validated& validated,
               json& errors, bool& upstream_ok) {
  const json extra = {
      {"input_name", in.name}, {"input_config", InputConfig(in)}, {"received_value", val}};
  if (val.size() != 2) {
    errors.push_back(Reason("bad_linked_input",
                            "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                            in.name, extra));
    return false;
  }
  const std::string o_id = PyStr(val[0]);
  if (!prompt.contains(o_id) || !val[1].is_number_integer()) {
    throw NodeException("KeyError", "'" + o_id + "'");
  }
  const auto& o_def = Registry().at(prompt[o_id]["class_type"].get<std::string>());
  const int64_t slot = val[1].get<int64_t>();
  if (slot < 0 || slot >= static_cast<int64_t>(o_def.output_types.size())) {
    throw NodeException("IndexError", "tuple index out of range");
  }
  const std::string& received = o_def.output_types[static_cast<size_t>(slot)];
  if (received != in.type) {
    errors.push_back(Reason("return_type_mismatch", "Return type mismatch between linked nodes",
                            in.name + ", " + received + " != " + in.type,
                            {{"input_name", in.name},
                             {"input_config", InputConfig(in)},
                             {"received_type", received},
                             {"linked_node", val}}));
    return false;
  }
  try {
    if (!ValidateInputs(prompt, o_id, validated)) upstream_ok = false;
  } catch (const NodeException& ex) {
    upstream_ok = false;
    validated.Set(o_id, false,
                  json::array({Reason("exception_during_inner_validation",
                                      "Exception when validating inner node", ex.what(),
                                      {{"input_name", in.name},
                                       {"input_config", InputConfig(in)},
                                       {"exception_message", ex.what()},
                                       {"exception_type", ex.exception_type},
                                       {"traceback", json::array()},
                                       {"linked_node", val}})}));
  }
  return true;
}

void CheckWidget(const NodeInput& in, json& val, json& errors) {
  json extra = {
      {"input_name", in.name}, {"input_config", InputConfig(in)}, {"received_value", val}};
  std::string why;
  const auto converted = Convert(in, val, &why);
  if (!converted) {
    extra["exception_message"] = why;
    errors.push_back(Reason("invalid_input_type",
                            "Failed to convert an input value to a " + in.type + " value",
                            in.name + ", " + PyStr(val) + ", " + why, extra));
    return;
  }
  val = *converted;
  extra["received_value"] = val;
  if (in.options.contains("min") && val.is_number() && val < in.options["min"]) {
    errors.push_back(
        Reason("value_smaller_than_min",
               "Value " + val.dump() + " smaller than min of " + in.options["min"].dump(), in.name,
               extra));
  } else if (in.options.contains("max") && val.is_number() && val > in.options["max"]) {
    errors.push_back(Reason(
        "value_bigger_than_max",
        "Value " + val.dump() + " bigger than max of " + in.options["max"].dump(), in.name, extra));
  } else if (in.type == "COMBO" &&
             std::find(in.choices.begin(), in.choices.end(), PyStr(val)) == in.choices.end()) {
    errors.push_back(Reason("value_not_in_list", "Value not in list",
                            in.name + ": '" + PyStr(val) + "' not in " + json(in.choices).dump(),
                            extra));
  }
}

bool ValidateInputs(json& prompt, const std::string& id, Validated& validated) {
  if (auto it = validated.results.find(id); it != validated.results.end()) return it->second.first;
  json& node = prompt[id];
  if (!node.contains("inputs") || !node["inputs"].is_object()) {
    throw NodeException("KeyError", "'inputs'");
  }
  const NodeDef& def = Registry().at(node["class_type"].get<std::string>());
  json& inputs = node["inputs"];
  json errors = json::array();
  bool upstream_ok = true;
  for (const NodeInput& in : def.inputs) {
    if (!inputs.contains(in.name)) {
      if (in.required) {
        errors.push_back(Reason("required_input_missing", "Required input is missing", in.name,
                                {{"input_name", in.name}}));
      }
      continue;
    }
    json& val = inputs[in.name];
    if (val.is_array()) {
      CheckLink(prompt, in, val, validated, errors, upstream_ok);
    } else {
      CheckWidget(in, val, errors);
    }
  }
  const bool ok = errors.empty() && upstream_ok;
  validated.Set(id, ok, errors);
  return ok;
}

// Returns the invalid_prompt error for the first node without a known class_type, or null.
json CheckClassTypes(const json& prompt, std::vector<std::string>* outputs) {
  for (const auto& [id, node] : prompt.items()) {
    if (!node.is_object() || !node.contains("class_type") || !node["class_type"].is_string()) {
      return Reason("invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    "Node ID '#" + id + "'", json::object());
    }
    const std::string class_type = node["class_type"].get<std::string>();
    const auto it = Registry().find(class_type);
    if (it == Registry().end()) {
      return Reason("invalid_prompt",
                    "Cannot execute because node " + class_type + " does not exist.",
                    "Node ID '#" + id + "'", json::object());
    }
    if (it->second.output_node) outputs->push_back(id);
  }
  return nullptr;
}

}  // namespace

Validation ValidatePrompt(json& prompt) {
  Validation v;
  std::vector<std::string> outputs;
  if (!prompt.is_object()) {
    v.error = Reason("invalid_prompt", "Cannot execute because the prompt is not an object.", "",
                     json::object());
    return v;
  }
  if (json e = CheckClassTypes(prompt, &outputs); !e.is_null()) {
    v.error = e;
    return v;
  }
  if (outputs.empty()) {
    v.error = Reason("prompt_no_outputs", "Prompt has no outputs", "", json::object());
    return v;
  }
  Validated validated;
  std::vector<std::pair<std::string, json>> failed;
  for (const std::string& o : outputs) {
    bool ok = false;
    json reasons = json::array();
    try {
      ok = ValidateInputs(prompt, o, validated);
      reasons = validated.results[o].second;
    } catch (const NodeException& ex) {
      reasons = json::array(
          {Reason("exception_during_validation", "Exception when validating node", ex.what(),
                  {{"exception_type", ex.exception_type}, {"traceback", json::array()}})});
      validated.Set(o, false, reasons);
    }
    if (ok) {
      v.good_outputs.push_back(o);
      continue;
    }
    failed.emplace_back(o, reasons);
    for (const std::string& node_id : validated.order) {
      const auto& [node_ok, node_reasons] = validated.results[node_id];
      if (node_ok || node_reasons.empty()) continue;
      if (!v.node_errors.contains(node_id)) {
        v.node_errors[node_id] = {{"errors", node_reasons},
                                  {"dependent_outputs", json::array()},
                                  {"class_type", prompt[node_id]["class_type"]}};
      }
      v.node_errors[node_id]["dependent_outputs"].push_back(o);
    }
  }
  if (v.good_outputs.empty()) {
    std::string details;
    for (const auto& [o, reasons] : failed) {
      for (const auto& r : reasons) {
        if (!details.empty()) details += "\n";
        details += r["message"].get<std::string>() + ": " + r["details"].get<std::string>();
      }
    }
    v.error = Reason("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                     details, json::object());
    return v;
  }
  v.ok = true;
  return v;
}

}  // namespace scenefarm::testing::comfy
