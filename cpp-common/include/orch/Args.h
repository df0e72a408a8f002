#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace orch {

// The one style both programs parse their command line in (server/src/Options.cc,
// loadgen/src/Options.cc): parseOptions(argc, argv, &options, &error) returns an
// outcome, fills *error with what is wrong, and main() prints and exits (0 for
// help/version, 2 for a bad option); "--name value" and "--name=value" alike;
// numbers checked whole and in range by the helpers below.
enum class ParseOutcome { kOk, kHelp, kVersion, kError };

// One option of argv[*i]: its name, and its value when it takes one (taken from
// "--name=value" or the next argument, which *i then moves past). False: a value
// is needed and there is none.
inline bool nextOption(int argc, char** argv, int* i, bool takesValue, std::string* name,
                       std::string* value) {
  *name = argv[*i];
  value->clear();
  size_t eq = name->find('=');
  if (name->rfind("--", 0) == 0 && eq != std::string::npos) {
    *value = name->substr(eq + 1);
    name->resize(eq);
    return takesValue;
  }
  if (!takesValue) return true;
  if (*i + 1 >= argc) return false;
  *value = argv[++*i];
  return true;
}

// A whole decimal integer in [lo, hi].
inline bool parseInt(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

inline bool parseInt(const std::string& s, int lo, int hi, int* out) {
  int64_t v = 0;
  if (!parseInt(s, int64_t{lo}, int64_t{hi}, &v)) return false;
  *out = static_cast<int>(v);
  return true;
}

// A whole finite number (as strtod reads it) in [lo, hi].
inline bool parseNumber(const std::string& s, double lo, double hi, double* out) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// CPU numbers below `limit`: "1,3", "0-3", "0,2-4"; at least one.
inline bool parseCpuList(const std::string& s, int limit, std::vector<int>* out) {
  out->clear();
  size_t start = 0;
  while (true) {
    size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t dash = item.find('-');
    int64_t a = 0;
    int64_t b = 0;
    if (dash == std::string::npos) {
      if (!parseInt(item, 0, limit - 1, &a)) return false;
      b = a;
    } else if (!parseInt(item.substr(0, dash), 0, limit - 1, &a) ||
               !parseInt(item.substr(dash + 1), a, limit - 1, &b)) {
      return false;
    }
    for (int64_t c = a; c <= b; ++c) out->push_back(static_cast<int>(c));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return !out->empty();
}

}  // namespace orch
