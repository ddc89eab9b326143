#include "ferry/protocol/channel_data.hpp"

#include "ferry/protocol/wire.hpp"

namespace ferry::protocol {

std::optional<channel_data_view> parse_channel_data(std::span<const std::uint8_t> bytes) {
    if (bytes.size() < channel_data_header_size) return std::nullopt;
    const auto channel = load_u16(bytes.data());
    const auto length = load_u16(bytes.data() + 2);
    if (!is_channel_number(channel) || length > bytes.size() - channel_data_header_size)
        return std::nullopt;
    return channel_data_view{channel, bytes.subspan(channel_data_header_size, length)};
}

void write_channel_data_header(std::span<std::uint8_t, channel_data_header_size> out,
                               std::uint16_t channel, std::uint16_t length) {
    store_u16(out.data(), channel);
    store_u16(out.data() + 2, length);
}

} // namespace ferry::protocol
