#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace loadgen {

namespace {
constexpr int kTopBit = 63;
}

Histogram::Histogram() : counts_(kSubCount * (kTopBit - kSubBits + 2), 0) {}

std::size_t Histogram::index_of(std::uint64_t value) {
    if (value < kSubCount) return static_cast<std::size_t>(value);
    const int top = kTopBit - std::countl_zero(value);  // >= kSubBits
    const int shift = top - kSubBits;
    const std::uint64_t sub = (value >> shift) & (kSubCount - 1);
    return static_cast<std::size_t>(kSubCount * (shift + 1) + sub);
}

std::uint64_t Histogram::upper_bound_of(std::size_t index) {
    if (index < kSubCount) return index;
    const std::size_t shift = index / kSubCount - 1;
    const std::uint64_t sub = index % kSubCount;
    const std::uint64_t low = (kSubCount + sub) << shift;
    return low + ((std::uint64_t{1} << shift) - 1);
}

void Histogram::record(std::uint64_t value) {
    ++counts_[index_of(value)];
    ++count_;
    max_ = std::max(max_, value);
    min_ = std::min(min_, value);
    sum_ += static_cast<long double>(value);
}

void Histogram::merge(const Histogram& other) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
    min_ = std::min(min_, other.min_);
    sum_ += other.sum_;
}

double Histogram::mean() const {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

std::uint64_t Histogram::percentile(double q) const {
    if (count_ == 0) return 0;
    if (q >= 1.0) return max_;
    const auto wanted = static_cast<std::uint64_t>(
        std::max(1.0L, std::ceil(static_cast<long double>(q) * static_cast<long double>(count_))));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
        seen += counts_[i];
        if (seen >= wanted) return std::min(upper_bound_of(i), max_);
    }
    return max_;
}

}  // namespace loadgen
