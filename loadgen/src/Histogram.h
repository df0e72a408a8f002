#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace orchload {

// HdrHistogram's log-linear layout in microseconds: lowest 1, highest 60 s,
// 3 significant digits (2048 sub-buckets, halved per power of two above the first),
// so every value is kept within 0.1%. Bucket indices depend only on these constants,
// which is why histograms from threads and hosts merge exactly by adding counts.
// Not thread-safe: each worker owns its own and the main thread adds them at the end.
class Histogram {
 public:
  static constexpr int64_t kLowest = 1;
  static constexpr int64_t kHighest = 60'000'000;
  static constexpr int kSignificantDigits = 3;

  Histogram();

  void record(int64_t valueUs);  // clamped to [0, kHighest]
  void add(const Histogram& other);

  int64_t count() const { return total_; }
  int64_t min() const { return total_ ? min_ : 0; }
  int64_t max() const { return max_; }
  double mean() const;
  // HdrHistogram's rule: the first bucket whose running count reaches
  // max(1, round(p/100 * count)), reported as that bucket's highest equivalent value
  // (never above the recorded max).
  int64_t valueAtPercentile(double p) const;

  // {"unit":"us","count":..,"min":..,"max":..,"mean":..,"percentiles":{..},
  //  "histogram":{"lowest":1,"highest":..,"significant_digits":3,"buckets":[[value,count],..]}}
  // where value is each non-empty bucket's lowest equivalent value.
  void appendJson(std::string* out) const;

  static size_t indexOf(int64_t value);
  static int64_t lowestEquivalent(size_t index);
  static int64_t highestEquivalent(size_t index);
  static size_t bucketCount();

 private:
  std::vector<int64_t> counts_;
  int64_t total_ = 0;
  int64_t min_ = INT64_MAX;
  int64_t max_ = 0;
  double sum_ = 0;
};

}  // namespace orchload
