#include "cpu/kv_cache_store.h"

#include <new>

#include "core/checked_math.h"

namespace fmha {

std::unique_ptr<KvCacheStore> KvCacheStore::create(const Config& c, int64_t max_bytes, std::string* error) {
  std::unique_ptr<KvCacheStore> s(new KvCacheStore());
  s->cfg_ = c;
  const int64_t rows = c.page_size > 0 ? c.num_pages : c.batch;    // outer dimension
  const int64_t per = c.page_size > 0 ? c.page_size : c.capacity;  // rows per outer entry
  int64_t k_elems = 0, v_elems = 0, bytes = 0;
  const bool fits = checked_mul(rows, per, &k_elems) && checked_mul(k_elems, c.heads, &k_elems) &&
                    checked_mul(k_elems, c.D, &k_elems) &&
                    checked_mul(rows * per, c.heads, &v_elems) && checked_mul(v_elems, c.Dv, &v_elems) &&
                    checked_add(k_elems, v_elems, &bytes) && checked_mul(bytes, dtype_size(c.dtype), &bytes);
  if (!fits || bytes > max_bytes) {
    *error = "the KV cache needs " + (fits ? std::to_string(bytes) : std::string("more than 2^63")) +
             " bytes, above FMHA_MAX_SCRATCH_BYTES=" + std::to_string(max_bytes);
    return nullptr;
  }
  s->bytes_ = bytes;
  const size_t es = size_t(dtype_size(c.dtype));
  s->k_ = ::operator new(size_t(k_elems) * es + 1, std::nothrow);
  s->v_ = ::operator new(size_t(v_elems) * es + 1, std::nothrow);
  if (!s->k_ || !s->v_) {
    *error = "allocating the KV cache (" + std::to_string(bytes) + " bytes) failed";
    return nullptr;
  }
  KvCacheView& v = s->view_;
  v.dtype = c.dtype;
  v.k = s->k_;
  v.v = s->v_;
  v.k_stride[0] = per * c.heads * c.D; v.k_stride[1] = c.heads * c.D; v.k_stride[2] = c.D;
  v.v_stride[0] = per * c.heads * c.Dv; v.v_stride[1] = c.heads * c.Dv; v.v_stride[2] = c.Dv;
  s->lengths_.assign(size_t(c.batch), 0);
  if (c.page_size > 0) {
    v.page_size = c.page_size;
    v.max_pages = (c.capacity + c.page_size - 1) / c.page_size;
    s->block_table_.assign(size_t(c.batch * v.max_pages), -1);
    v.block_table = s->block_table_.data();
    for (int64_t p = c.num_pages - 1; p >= 0; --p) s->free_.push_back(int32_t(p));  // page 0 handed out first
  }
  return s;
}

KvCacheStore::~KvCacheStore() {
  ::operator delete(k_);
  ::operator delete(v_);
}

int64_t KvCacheStore::pages_needed(int64_t s, int64_t len) const {
  if (!paged()) return 0;
  const int64_t have = (lengths_[size_t(s)] + cfg_.page_size - 1) / cfg_.page_size;
  const int64_t want = (len + cfg_.page_size - 1) / cfg_.page_size;
  return want > have ? want - have : 0;
}

void KvCacheStore::grow(int64_t s, int64_t len) {
  if (paged()) {
    const int64_t have = (lengths_[size_t(s)] + cfg_.page_size - 1) / cfg_.page_size;
    const int64_t want = (len + cfg_.page_size - 1) / cfg_.page_size;
    for (int64_t i = have; i < want; ++i) {
      block_table_[size_t(s * view_.max_pages + i)] = free_.back();
      free_.pop_back();
    }
  }
  lengths_[size_t(s)] = int32_t(len);
}

void KvCacheStore::truncate(int64_t s, int64_t len) {
  if (paged()) {
    int32_t* row = block_table_.data() + s * view_.max_pages;
    for (int64_t i = (len + cfg_.page_size - 1) / cfg_.page_size; i < view_.max_pages; ++i)
      if (row[i] >= 0) { free_.push_back(row[i]); row[i] = -1; }
  }
  lengths_[size_t(s)] = int32_t(len);
}

}  // namespace fmha
