// Base64 (common/base64.h) and PNG decoding for image outputs. PNGs from an egg are hostile:
// libpng's simplified API checks the stream; we bound the pixel count
// before allocating.
#include <png.h>

#include <cstring>

#include "common/base64.h"
#include "egg/notebook.h"

namespace egg {

// Notebook writers wrap base64 lines and some drop the padding.
Result<std::string> DecodeBase64(std::string_view text) {
  auto bytes = Base64Decode(text, Base64Mode::kLenient);
  if (!bytes) return Fail(Code::kInvalidArgument, "malformed base64");
  return std::move(*bytes);
}

std::string EncodeBase64(std::string_view bytes) {
  return Base64Encode(bytes);
}

Result<Image> DecodePng(std::string_view png) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, png.data(), png.size())) {
    std::string why = image.message;
    png_image_free(&image);
    return Fail(Code::kInvalidArgument, "PNG: " + why);
  }
  uint64_t pixels = uint64_t{image.width} * image.height;
  if (image.width == 0 || image.height == 0 || pixels > kMaxImagePixels) {
    png_image_free(&image);
    return Fail(Code::kInvalidArgument, "PNG: image size out of bounds");
  }
  image.format = PNG_FORMAT_RGBA;
  Image out;
  out.width = image.width;
  out.height = image.height;
  out.rgba.resize(pixels * 4);
  if (!png_image_finish_read(&image, nullptr, out.rgba.data(), 0, nullptr)) {
    std::string why = image.message;
    png_image_free(&image);
    return Fail(Code::kInvalidArgument, "PNG: " + why);
  }
  png_image_free(&image);
  return out;
}

}  // namespace egg
