// Each binding file registers its own exports; addon.cc calls them all.
#pragma once
#include <napi.h>

namespace fmha {

void register_attention(Napi::Env env, Napi::Object exports);
void register_packing(Napi::Env env, Napi::Object exports);
void register_tensor_functions(Napi::Env env, Napi::Object exports);
void register_runtime(Napi::Env env, Napi::Object exports);
void register_decode(Napi::Env env, Napi::Object exports);
void register_device(Napi::Env env, Napi::Object exports);

}  // namespace fmha
