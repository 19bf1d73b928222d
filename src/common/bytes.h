// Little-endian load/store helpers and a bounds-checked reader. The only
// place in egg that turns bytes into integers.
#ifndef EGG_COMMON_BYTES_H_
#define EGG_COMMON_BYTES_H_

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace egg {

inline uint16_t LoadLe16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t LoadLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t LoadLe64(const uint8_t* p) {
  return static_cast<uint64_t>(LoadLe32(p)) |
         (static_cast<uint64_t>(LoadLe32(p + 4)) << 32);
}
inline uint32_t LoadBe32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) |
         (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

inline void StoreLe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void StoreLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void StoreLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void StoreBe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

// Appends little-endian / big-endian integers and raw bytes to a buffer.
class ByteWriter {
 public:
  void U8(uint8_t v) { buf_.push_back(v); }
  void Le16(uint16_t v) { Grow(2, [&](uint8_t* p) { StoreLe16(p, v); }); }
  void Le32(uint32_t v) { Grow(4, [&](uint8_t* p) { StoreLe32(p, v); }); }
  void Le64(uint64_t v) { Grow(8, [&](uint8_t* p) { StoreLe64(p, v); }); }
  void Be32(uint32_t v) { Grow(4, [&](uint8_t* p) { StoreBe32(p, v); }); }
  void Bytes(std::span<const uint8_t> b) {
    buf_.insert(buf_.end(), b.begin(), b.end());
  }
  void Bytes(std::string_view s) {
    buf_.insert(buf_.end(), s.begin(), s.end());
  }
  void Zeros(size_t n) { buf_.resize(buf_.size() + n, 0); }

  std::vector<uint8_t>& buffer() { return buf_; }
  size_t size() const { return buf_.size(); }

 private:
  template <typename F>
  void Grow(size_t n, F f) {
    size_t at = buf_.size();
    buf_.resize(at + n);
    f(buf_.data() + at);
  }
  std::vector<uint8_t> buf_;
};

// Reads from a span, checking the remaining length before every read. A
// failed read sets the reader's error flag and returns zeros; callers check
// ok() once after a group of reads.
class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> data) : data_(data) {}

  bool ok() const { return ok_; }
  size_t remaining() const { return ok_ ? data_.size() - pos_ : 0; }
  size_t position() const { return pos_; }
  bool AtEnd() const { return ok_ && pos_ == data_.size(); }

  uint8_t U8() {
    const uint8_t* p = Take(1);
    return p ? p[0] : 0;
  }
  uint16_t Le16() {
    const uint8_t* p = Take(2);
    return p ? LoadLe16(p) : 0;
  }
  uint32_t Le32() {
    const uint8_t* p = Take(4);
    return p ? LoadLe32(p) : 0;
  }
  uint64_t Le64() {
    const uint8_t* p = Take(8);
    return p ? LoadLe64(p) : 0;
  }
  uint32_t Be32() {
    const uint8_t* p = Take(4);
    return p ? LoadBe32(p) : 0;
  }
  // Returns an empty span and sets the error flag if fewer than n remain.
  std::span<const uint8_t> Bytes(size_t n) {
    const uint8_t* p = Take(n);
    return p ? std::span<const uint8_t>(p, n) : std::span<const uint8_t>();
  }
  std::string_view String(size_t n) {
    auto b = Bytes(n);
    return std::string_view(reinterpret_cast<const char*>(b.data()),
                            b.size());
  }

 private:
  const uint8_t* Take(size_t n) {
    if (!ok_ || n > data_.size() - pos_) {
      ok_ = false;
      return nullptr;
    }
    const uint8_t* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }

  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Overflow-checked addition and multiplication for sizes read from input.
inline bool AddOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_add_overflow(a, b, out);
}
inline bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace egg

#endif  // EGG_COMMON_BYTES_H_
