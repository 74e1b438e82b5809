#include "http.hpp"

namespace reactor::protocols {

bool ascii_iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

std::string_view HttpRequest::header(std::string_view name) const {
    for (const auto& h : headers) {
        if (ascii_iequals(h.name, name)) return h.value;
    }
    return {};
}

}  // namespace reactor::protocols
