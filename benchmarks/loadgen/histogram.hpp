#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace loadgen {

// Latency histogram with log-spaced buckets: every power of two is split into 128 linear
// sub-buckets, so any recorded value is reported within 1/128 (0.8%) of its true value, from 1 ns
// up to hours, in a fixed 60 KB. Recording is a few shifts and an increment; not thread-safe (one
// per client thread, merged at the end).
class Histogram {
  public:
    Histogram();

    void record(std::uint64_t value);
    void merge(const Histogram& other);

    std::uint64_t count() const { return count_; }
    std::uint64_t max() const { return max_; }
    std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
    double mean() const;
    // Smallest recorded value v such that a fraction q (0..1] of the values are <= v, to the
    // bucket's precision; the exact max for q == 1.
    std::uint64_t percentile(double q) const;

  private:
    static constexpr int kSubBits = 7;
    static constexpr std::uint64_t kSubCount = 1u << kSubBits;
    static std::size_t index_of(std::uint64_t value);
    // The largest value that falls in the bucket.
    static std::uint64_t upper_bound_of(std::size_t index);

    std::vector<std::uint64_t> counts_;
    std::uint64_t count_ = 0;
    std::uint64_t max_ = 0;
    std::uint64_t min_ = UINT64_MAX;
    long double sum_ = 0;
};

}  // namespace loadgen
