#include "Histogram.h"

#include <algorithm>
#include <cstdio>

namespace orchload {

namespace {
// 3 significant digits: 2 * 10^3 = 2000 -> 2048 sub-buckets (2^11), half is 1024.
constexpr int kSubBucketHalfMagnitude = 10;
constexpr int64_t kSubBucketHalf = 1 << kSubBucketHalfMagnitude;
constexpr int64_t kSubBucketMask = 2 * kSubBucketHalf - 1;

int bucketOf(int64_t value) {
  return 64 - __builtin_clzll(static_cast<unsigned long long>(value | kSubBucketMask)) -
         (kSubBucketHalfMagnitude + 1);
}

size_t computeBucketCount() {
  // HdrHistogram's bucketsNeeded for kHighest, then (buckets + 1) * half sub-buckets.
  int64_t smallestUntrackable = 2 * kSubBucketHalf;
  int buckets = 1;
  while (smallestUntrackable <= Histogram::kHighest) {
    smallestUntrackable <<= 1;
    ++buckets;
  }
  return static_cast<size_t>((buckets + 1) * kSubBucketHalf);
}
}  // namespace

size_t Histogram::bucketCount() {
  static const size_t n = computeBucketCount();
  return n;
}

size_t Histogram::indexOf(int64_t value) {
  int bucket = bucketOf(value);
  int64_t sub = value >> bucket;
  return static_cast<size_t>(((static_cast<int64_t>(bucket) + 1) << kSubBucketHalfMagnitude) +
                             (sub - kSubBucketHalf));
}

int64_t Histogram::lowestEquivalent(size_t index) {
  int64_t bucket = static_cast<int64_t>(index >> kSubBucketHalfMagnitude) - 1;
  int64_t sub = static_cast<int64_t>(index & (kSubBucketHalf - 1)) + kSubBucketHalf;
  if (bucket < 0) {
    sub -= kSubBucketHalf;
    bucket = 0;
  }
  return sub << bucket;
}

int64_t Histogram::highestEquivalent(size_t index) {
  int64_t low = lowestEquivalent(index);
  return low + (int64_t{1} << bucketOf(low)) - 1;
}

Histogram::Histogram() : counts_(bucketCount(), 0) {}

void Histogram::record(int64_t valueUs) {
  int64_t v = std::clamp<int64_t>(valueUs, 0, kHighest);
  ++counts_[indexOf(v)];
  ++total_;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
  sum_ += static_cast<double>(v);
}

void Histogram::add(const Histogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

double Histogram::mean() const { return total_ ? sum_ / static_cast<double>(total_) : 0.0; }

int64_t Histogram::valueAtPercentile(double p) const {
  if (total_ == 0) return 0;
  p = std::min(p, 100.0);
  int64_t rank = static_cast<int64_t>(p / 100.0 * static_cast<double>(total_) + 0.5);
  rank = std::max<int64_t>(rank, 1);
  int64_t running = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    running += counts_[i];
    if (running >= rank) return std::min(highestEquivalent(i), max_);
  }
  return max_;
}

void Histogram::appendJson(std::string* out) const {
  char buf[128];
  std::snprintf(buf, sizeof buf, "{\"unit\":\"us\",\"count\":%lld,\"min\":%lld,\"max\":%lld,\"mean\":%.3f,",
                static_cast<long long>(total_), static_cast<long long>(min()),
                static_cast<long long>(max_), mean());
  *out += buf;
  *out += "\"percentiles\":{";
  static const char* const kNames[] = {"50", "75", "90", "99", "99.9", "99.99", "99.999"};
  static const double kValues[] = {50, 75, 90, 99, 99.9, 99.99, 99.999};
  for (size_t i = 0; i < 7; ++i) {
    std::snprintf(buf, sizeof buf, "%s\"%s\":%lld", i ? "," : "", kNames[i],
                  static_cast<long long>(valueAtPercentile(kValues[i])));
    *out += buf;
  }
  std::snprintf(buf, sizeof buf, "},\"histogram\":{\"lowest\":%lld,\"highest\":%lld,\"significant_digits\":%d,\"buckets\":[",
                static_cast<long long>(kLowest), static_cast<long long>(kHighest), kSignificantDigits);
  *out += buf;
  bool first = true;
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (!counts_[i]) continue;
    std::snprintf(buf, sizeof buf, "%s[%lld,%lld]", first ? "" : ",",
                  static_cast<long long>(lowestEquivalent(i)), static_cast<long long>(counts_[i]));
    *out += buf;
    first = false;
  }
  *out += "]}}";
}

}  // namespace orchload
