#include "cpu/kv_block_cache.h"

#include <algorithm>
#include <cstring>
#include "cpu/cache_prefetch.h"
#include "cpu/tile_pack.h"

namespace fmha {

int64_t KvBlockCache::floats(const AttentionParams& p) {
  const int64_t blocks = (p.Sk + kKeyBlock - 1) / kKeyBlock;
  return blocks * kKeyBlock * (p.D + p.Dv) + kTransposeRows * std::max(p.D, p.Dv) + (blocks + 3) / 4;
}

KvBlockCache::KvBlockCache(const AttentionParams& p, const CpuMicrokernels& mk, const Bf16DotKernels* pairs,
                           float* buf)
    : p_(p), mk_(mk), pairs_(pairs), blocks_((p.Sk + kKeyBlock - 1) / kKeyBlock),
      kt_block_(pairs ? (p.D + 1) / 2 * kKeyBlock : p.D * kKeyBlock),
      v_block_(pairs ? kKeyBlock / 2 * p.Dv : kKeyBlock * p.Dv) {
  kt_ = buf;
  v_ = kt_ + blocks_ * kKeyBlock * p.D;
  row_tmp_ = v_ + blocks_ * kKeyBlock * p.Dv;
  packed_ = reinterpret_cast<uint8_t*>(row_tmp_ + kTransposeRows * std::max(p.D, p.Dv));
}

void KvBlockCache::select(const SequenceView& seq, int64_t hk, bool v_reused) {
  if (seq.b == seq_.b && hk == hk_) return;
  seq_ = seq;
  hk_ = hk;
  v_in_place_ = p_.dtype == DType::F32 && !v_reused;
  std::memset(packed_, 0, size_t(blocks_));
}

void KvBlockCache::prefetch(int64_t j) const {
  const int64_t j0 = j * kKeyBlock;
  if (j >= blocks_ || j0 >= seq_.sk || packed_[j]) return;
  const int64_t n = std::min<int64_t>(kKeyBlock, seq_.sk - j0), es = dtype_size(p_.dtype);
  prefetch_rows(row_ptr(p_.k, p_.dtype, seq_.k_at(p_, j0, hk_)), p_.k_stride[1] * es, n, p_.D * es, false);
  prefetch_rows(row_ptr(p_.v, p_.dtype, seq_.v_at(p_, j0, hk_)), p_.v_stride[1] * es, n, p_.Dv * es, false);
}

void KvBlockCache::pack(int64_t j) {
  const int64_t j0 = j * kKeyBlock;
  const int n = int(std::min<int64_t>(kKeyBlock, seq_.sk - j0));
  const int64_t k_off = seq_.k_at(p_, j0, hk_), v_off = seq_.v_at(p_, j0, hk_);
  if (pairs_) {
    pairs_->pack_kt(static_cast<const uint16_t*>(row_ptr(p_.k, p_.dtype, k_off)), p_.k_stride[1], n, int(p_.D),
                    reinterpret_cast<uint32_t*>(kt_ + j * kt_block_), kKeyBlock);
    pairs_->pack_v(static_cast<const uint16_t*>(row_ptr(p_.v, p_.dtype, v_off)), p_.v_stride[1], n, int(p_.Dv),
                   reinterpret_cast<uint32_t*>(v_ + j * v_block_), p_.Dv);
  } else {
    pack_transposed(mk_, row_ptr(p_.k, p_.dtype, k_off), p_.dtype, p_.k_stride[1], n, int(p_.D), p_.scale,
                    kt_ + j * kt_block_, kKeyBlock, row_tmp_);
    if (!v_in_place())
      pack_rows(mk_, row_ptr(p_.v, p_.dtype, v_off), p_.dtype, p_.v_stride[1], n, int(p_.Dv), 1.0f,
                v_ + j * v_block_, p_.Dv);
  }
  packed_[j] = 1;
}

}  // namespace fmha
