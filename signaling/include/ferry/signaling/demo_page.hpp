// The demo page the signaling listener serves at /: signaling/demo/index.html, built in.
#pragma once

#include <string_view>

namespace ferry::signaling {

std::string_view demo_page();

} // namespace ferry::signaling
