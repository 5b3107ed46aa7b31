#!/usr/bin/env python3
"""Index-math model of cuda/decode_attention.cu (the stream-K decode kernel), run on the CPU with numpy.

No GPU was available when the kernel was written, so this script replays, per thread and per warp, what
the kernel does with indices -- and checks every CTA's output and lse against an independent float64
reference of DESIGN.md §3 (decode: Sk = cacheSeqlens[b], bottom-right alignment, window, softcap, ALiBi):

  host     unit enumeration (b, kv head, block of 16 rows) and their tile spans, the tile-size pick
           (pick_geometry), the copy widths, plan_decode (lean / split / single, ported from
           native/core/decode_partition.cc), slot numbering, the int32 plan layout;
  append   the fused k_new/v_new append kernel (paged or contiguous, seq_ids);
  copies   copy_rows' (row, chunk) stepping, byte for byte into a shared-memory image whose
           unwritten bytes are 0xFF (NaN in every dtype) except the zero-filled K region;
  scores   the (key, part) lane mapping over 16-byte vectors, the fp32 [d][16] q layout, the
           xor-shuffle combine and the one-writer-per-(row, key) rule;
  softmax  the warp-per-row online softmax with hooks and masks;
  P·V      the PvMap (columns ct + CT·ci, a contiguous run of rows), the 4-key steps and the tail;
  fix-up   partial slots, the per-unit counters and "last arriver merges" with CTAs interleaved in a
           random order at every global-memory synchronization point, the chunked coefficients.

Arithmetic is float64 here (the kernel's is fp32), so any index mistake shows as an error far above the
1e-9 tolerance. Runs with several random CTA interleavings must give bitwise-equal results (the merge
order is fixed by the plan). It checks the model, not the CUDA source: keep the two in step.

    python3 cuda/tools/decode_index_model.py        # about a minute; one line per case
"""
import math
import random
import sys

import numpy as np

from mask_rule import MaskRule

K_THREADS, K_ROWS, K_SPITCH = 128, 16, 128
K_STAGE_BYTES, K_MIN_TILES_PER_CTA, K_MAX_CTAS_PER_SM = 40 << 10, 2, 2
NAN_BYTE = 0xFF

DTYPES = {'f32': 4, 'f16': 2, 'bf16': 2}


# ----------------------------------------------------------------------------- dtype helpers

def to_bits(x, dt):
    """float array -> stored element bits (uint32 for f32, uint16 otherwise), round to nearest even."""
    x = np.asarray(x, np.float32)
    if dt == 'f32':
        return x.view(np.uint32).copy()
    if dt == 'f16':
        return x.astype(np.float16).view(np.uint16).copy()
    u = x.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def from_bits(bits, dt):
    bits = np.asarray(bits)
    if dt == 'f32':
        return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    if dt == 'f16':
        return bits.astype(np.uint16).view(np.float16).astype(np.float64)
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def elem_type(dt):
    return np.uint32 if dt == 'f32' else np.uint16


# ----------------------------------------------------------------------------- plan_decode (C++ port)

def plan_decode(spans, strategy, workers):
    workers = max(1, workers)
    pieces, tasks = [], []
    if not spans:
        return [], [0], [0]
    tiles = [max(0, e - b) for b, e in spans]
    if strategy == 'split':
        splits = max(1, (workers + len(spans) - 1) // len(spans))
        for u, (b, e) in enumerate(spans):
            n = tiles[u]
            k = max(1, min(splits, n))
            for i in range(k):
                pieces.append((u, b + n * i // k, b + n * (i + 1) // k))
        tasks = list(range(len(pieces) + 1))
    elif strategy == 'single':
        for u, (b, e) in enumerate(spans):
            pieces.append((u, b, max(b, e)))
        tasks = list(range(len(pieces) + 1))
    else:
        total = sum(tiles)
        u, start = 0, 0
        for w in range(workers):
            tasks.append(len(pieces))
            lo, hi = total * w // workers, total * (w + 1) // workers
            last = w + 1 == workers
            while u < len(spans):
                b, e = spans[u]
                n = tiles[u]
                end = start + n
                if n == 0:
                    if start < hi or last:
                        pieces.append((u, b, b))
                        u += 1
                        continue
                    break
                a, bb = max(start, lo), min(end, hi)
                if a >= bb:
                    break
                pieces.append((u, b + (a - start), b + (bb - start)))
                if end > hi:
                    break
                start = end
                u += 1
        tasks.append(len(pieces))
    unit_pieces = [0] * (len(spans) + 1)
    for p in pieces:
        unit_pieces[p[0] + 1] += 1
    for u in range(len(spans)):
        unit_pieces[u + 1] += unit_pieces[u]
    return pieces, tasks, unit_pieces


# ----------------------------------------------------------------------------- host side (cuda_decode)

def geometry(D, Dv, es, kN):
    g = {'kN': kN}
    g['k_vecs'] = (D * es + 15) // 16
    g['k_ld'] = (g['k_vecs'] | 1) * 16
    g['v_ld'] = (Dv * es + 15) // 16 * 16
    g['q_dims'] = g['k_vecs'] * 16 // es
    g['off_v'] = 2 * kN * g['k_ld']
    g['off_q'] = g['off_v'] + 2 * kN * g['v_ld']
    g['off_s'] = g['off_q'] + g['q_dims'] * K_ROWS * 4
    g['off_off'] = g['off_s'] + K_ROWS * K_SPITCH * 4
    g['off_small'] = g['off_off'] + 4 * kN * 8
    g['smem'] = g['off_small'] + (7 * K_ROWS + 4) * 4
    return g


def pick_geometry(D, Dv, es, smem_per_sm, optin):
    shared_budget = min(optin, smem_per_sm // K_MAX_CTAS_PER_SM - 1024)
    for budget in (shared_budget, optin):
        for kN in (128, 64, 32, 16):
            g = geometry(D, Dv, es, kN)
            if (kN * (g['k_ld'] + g['v_ld']) <= K_STAGE_BYTES or kN == 16) and g['smem'] <= budget:
                return g
    return None


def copy_chunk_bytes(base_bytes, strides, row_bytes, es):
    for c in (16, 8, 4):
        if base_bytes % c == 0 and row_bytes % c == 0 and all((s * es) % c == 0 for s in strides):
            return c
    return 2


def pv_columns(Dv):
    c = 32
    while c < Dv and c < K_THREADS:
        c <<= 1
    return c


def clamp_window(w, limit):
    return -1 if w < 0 else min(w, limit)


def host_plan(pr, dev):
    """cuda_decode up to the launch: returns the DecodeArgs-like dict and the grid size."""
    B, Sq, Hq, Hkv, D, Dv, es = pr['B'], pr['Sq'], pr['Hq'], pr['Hkv'], pr['D'], pr['Dv'], DTYPES[pr['dt']]
    lens = pr['lens']
    max_len = max(lens) if lens else 0
    group = Hq // Hkv
    rows = group * Sq
    row_blocks = (rows + K_ROWS - 1) // K_ROWS
    n_units = B * Hkv * row_blocks
    geo = pick_geometry(D, Dv, es, dev['smem_per_sm'], dev['optin'])
    assert geo is not None
    kN = geo['kN']
    wl, wr = clamp_window(pr['wl'], Sq + max_len), clamp_window(pr['wr'], Sq + max_len)
    spans = []
    total = largest = 0
    for b in range(B):
        sk = lens[b]
        offset = sk - Sq
        block_span = []
        for rb in range(row_blocks):
            lo, hi = 1 << 62, 0
            for x in range(rb * K_ROWS, min(rows, (rb + 1) * K_ROWS)):
                diag = x % Sq + offset
                l = max(0, diag - wl) if wl >= 0 else 0
                h = sk
                if pr['causal']:
                    h = min(h, diag + 1)
                if wr >= 0:
                    h = min(h, diag + wr + 1)
                if h > l:
                    lo, hi = min(lo, l), max(hi, h)
            block_span.append((lo // kN, (hi + kN - 1) // kN) if hi > lo else (0, 0))
        for g in range(Hkv):
            for rb in range(row_blocks):
                s = block_span[rb]
                spans.append(s)
                total += s[1] - s[0]
                largest = max(largest, s[1] - s[0])
    strategy = pr['strategy']
    num_sms = max(1, dev['num_sms'])
    if strategy == 'auto':
        strategy = 'single' if total == 0 or largest * 8 * num_sms <= total else 'lean'
    max_workers = num_sms * min(dev['per_sm'], K_MAX_CTAS_PER_SM)
    workers = max_workers
    if strategy == 'lean':
        workers = max(1, min(max_workers, (total + K_MIN_TILES_PER_CTA - 1) // K_MIN_TILES_PER_CTA))
    pieces, tasks, unit_pieces = plan_decode(spans, strategy, workers)
    assert len(unit_pieces) == n_units + 1
    slot_floats = 2 * K_ROWS + K_ROWS * Dv
    packed, slots = [], 0
    for u in range(n_units):
        first, last = unit_pieces[u], unit_pieces[u + 1]
        for i in range(first, last):
            un, b0, e0 = pieces[i]
            packed.append((un, b0, e0, slots if last - first > 1 else -1))
            if last - first > 1:
                slots += 1
    a = dict(geo)
    a.update(Sq=Sq, Hkv=Hkv, group=group, rows=rows, row_blocks=row_blocks, D=D, Dv=Dv, causal=int(pr['causal']),
             window_left=wl, window_right=wr, scale=pr['scale'], softcap=pr['softcap'],
             k_chunk=copy_chunk_bytes(pr['k_base'], pr['k_strides'], D * es, es),
             v_chunk=copy_chunk_bytes(pr['v_base'], pr['v_strides'], Dv * es, es),
             pv_cols=pv_columns(Dv), pieces=packed, tasks=tasks, unit_pieces=unit_pieces,
             counters=[0] * n_units, partials=np.full(max(1, slots) * slot_floats, np.nan), slot_floats=slot_floats,
             strategy=strategy)
    return a, len(tasks) - 1


# ----------------------------------------------------------------------------- device side

class Memory:
    """Global memory of one case: the caches and inputs as flat element arrays (bits)."""

    def __init__(self, pr):
        self.pr = pr


def locate(pr, seq, j):
    if pr['block_table'] is not None:
        return pr['block_table'][seq * pr['max_pages'] + j // pr['page_size']], j % pr['page_size']
    return seq, j


def append_kernel(pr):
    """decode_append_kernel: bit copies of k_new/v_new rows into the cache."""
    for b in range(pr['B']):
        for t in range(pr['Sq']):
            seq = pr['seq_ids'][b] if pr['seq_ids'] is not None else b
            j = pr['lens'][b] - pr['Sq'] + t
            if j < 0:
                continue
            outer, row = locate(pr, seq, j)
            for h in range(pr['Hkv']):
                ks, vs = pr['k_strides'], pr['v_strides']
                kc = outer * ks[0] + row * ks[1] + h * ks[2] + pr['k_base_elems']
                vc = outer * vs[0] + row * vs[1] + h * vs[2] + pr['v_base_elems']
                kn = b * pr['kn_strides'][0] + t * pr['kn_strides'][1] + h * pr['kn_strides'][2]
                vn = b * pr['vn_strides'][0] + t * pr['vn_strides'][1] + h * pr['vn_strides'][2]
                pr['kmem'][kc:kc + pr['D']] = pr['k_new'][kn:kn + pr['D']]
                pr['vmem'][vc:vc + pr['Dv']] = pr['v_new'][vn:vn + pr['Dv']]


def copy_rows(smem, dst, ld, gmem_bytes, base_byte, off, es, n, row_bytes, chunk):
    """copy_rows<chunk>: thread t starts at (t / nch, t % nch) and steps 128 chunks at a time."""
    nch = row_bytes // chunk
    dk, dc = K_THREADS // nch, K_THREADS - (K_THREADS // nch) * nch
    seen = set()
    for tid in range(K_THREADS):
        key, c = tid // nch, tid - (tid // nch) * nch
        while key < n:
            assert (key, c) not in seen
            seen.add((key, c))
            src = base_byte + off[key] * es + c * chunk
            smem[dst + key * ld + c * chunk: dst + key * ld + (c + 1) * chunk] = gmem_bytes[src:src + chunk]
            c += dc
            key += dk
            if c >= nch:
                c -= nch
                key += 1
    assert len(seen) == n * nch


def issue_tile(a, pr, smem, s_off, stage, seq, g, j0, n):
    es = DTYPES[pr['dt']]
    kN = a['kN']
    for tid in range(n):
        j = j0 + tid
        outer, row = locate(pr, seq, j)
        ks, vs = pr['k_strides'], pr['v_strides']
        s_off[stage][0][tid] = outer * ks[0] + row * ks[1] + g * ks[2]
        s_off[stage][1][tid] = outer * vs[0] + row * vs[1] + g * vs[2]
    copy_rows(smem, stage * kN * a['k_ld'], a['k_ld'], pr['kbytes'](), pr['k_base'], s_off[stage][0], es, n,
              a['D'] * es, a['k_chunk'])
    copy_rows(smem, a['off_v'] + stage * kN * a['v_ld'], a['v_ld'], pr['vbytes'](), pr['v_base'], s_off[stage][1], es,
              n, a['Dv'] * es, a['v_chunk'])


def smem_elems(smem, byte, count, dt):
    es = DTYPES[dt]
    return from_bits(smem[byte:byte + count * es].view(elem_type(dt)), dt)


def hook(a, slope, acc, i, j, diag):  # ScoreHooks (accurate tanh)
    s = acc * a['scale']
    if a['softcap'] > 0:
        s = a['softcap'] * math.tanh(s * (1.0 / a['softcap']))
    if slope != 0:
        s -= slope * abs(diag - j)
    return s


def cta(a, pr, block, out, lse):
    """One CTA of decode_kernel<T>: a generator that yields where other CTAs may interleave."""
    dt = pr['dt']
    es = DTYPES[dt]
    kE = 16 // es
    kN = a['kN']
    smem = np.full(a['smem'], NAN_BYTE, np.uint8)
    smem[:a['off_v']] = 0  # the K zero-fill
    s_q = np.full(a['q_dims'] * K_ROWS, np.nan)
    s_s = np.full(K_ROWS * K_SPITCH, np.nan)
    s_off = [[[None] * kN, [None] * kN] for _ in range(2)]
    s_alpha, s_m, s_l = np.full(K_ROWS, np.nan), np.full(K_ROWS, np.nan), np.full(K_ROWS, np.nan)
    s_slope, s_t, s_lo, s_hi = [None] * K_ROWS, [None] * K_ROWS, [None] * K_ROWS, [None] * K_ROWS

    kpw = kN >> 2
    parts = 32 // kpw
    CT = a['pv_cols']
    rpt = K_ROWS * CT // K_THREADS

    def pm(tid):
        return tid & (CT - 1), tid // CT * rpt  # ct, row0

    def has(row0, jj, nrows):
        return jj < rpt and row0 + jj < nrows

    for pi in range(a['tasks'][block], a['tasks'][block + 1]):
        unit, t_begin, t_end, slot = a['pieces'][pi]
        rb, bg = unit % a['row_blocks'], unit // a['row_blocks']
        g, b = bg % a['Hkv'], bg // a['Hkv']
        x0 = rb * K_ROWS
        nrows = min(K_ROWS, a['rows'] - x0)
        sk = pr['lens'][b]
        seq = pr['seq_ids'][b] if pr['seq_ids'] is not None else b
        rule = MaskRule(sk - a['Sq'], sk, a['causal'], a['window_left'], a['window_right'])
        first = a['unit_pieces'][unit]
        npieces = a['unit_pieces'][unit + 1] - first

        for i in range(a['q_dims'] * K_ROWS):
            d, j = i >> 4, i & (K_ROWS - 1)
            val = 0.0
            if j < nrows and d < a['D']:
                x = x0 + j
                h, t = g * a['group'] + x // a['Sq'], x % a['Sq']
                qs = pr['q_strides']
                val = pr['qf'][b * qs[0] + t * qs[1] + h * qs[2] + d]
            s_q[i] = val
        for tid in range(nrows):
            x = x0 + tid
            h, t = g * a['group'] + x // a['Sq'], x % a['Sq']
            s_t[tid], s_lo[tid], s_hi[tid] = t, rule.lo(t), rule.hi(t)
            s_slope[tid] = pr['alibi'][h] if pr['alibi'] is not None else 0.0
        m_r = np.full((4, 4), -np.inf)  # [warp][r]
        l_r = np.zeros((4, 4))
        o = np.zeros((K_THREADS, 2, K_ROWS))

        nt = t_end - t_begin
        if nt > 0:
            issue_tile(a, pr, smem, s_off, 0, seq, g, t_begin * kN, min(kN, sk - t_begin * kN))
        for it in range(nt):
            stage = it & 1
            j0 = (t_begin + it) * kN
            n = min(kN, sk - j0)
            if it + 1 < nt:
                issue_tile(a, pr, smem, s_off, stage ^ 1, seq, g, j0 + kN, min(kN, sk - j0 - kN))
            # scores
            s_all = np.zeros((K_THREADS, K_ROWS))
            nq4 = (nrows + 3) >> 2
            for tid in range(K_THREADS):
                lane, warp = tid & 31, tid >> 5
                kl, part = lane & (kpw - 1), lane // kpw
                skey = warp * kpw + kl
                krow = (stage * kN + skey) * a['k_ld']
                s = np.zeros(K_ROWS)
                for vi in range(part, a['k_vecs'], parts):
                    kf = smem_elems(smem, krow + vi * 16, kE, dt)
                    for e in range(kE):
                        base = (vi * kE + e) * K_ROWS
                        for j4 in range(4):
                            if j4 < nq4:
                                s[4 * j4:4 * j4 + 4] += s_q[base + 4 * j4:base + 4 * j4 + 4] * kf[e]
                s_all[tid] = s
            off = kpw
            while off < 32:
                new = s_all.copy()
                for tid in range(K_THREADS):
                    src = (tid & ~31) | ((tid & 31) ^ off)
                    new[tid, :nrows] = s_all[tid, :nrows] + s_all[src, :nrows]
                s_all = new
                off <<= 1
            written = set()
            for tid in range(K_THREADS):
                lane, warp = tid & 31, tid >> 5
                kl, part = lane & (kpw - 1), lane // kpw
                skey = warp * kpw + kl
                for j in range(K_ROWS):
                    if j < nrows and (j & (parts - 1)) == part:
                        assert (j, skey) not in written
                        written.add((j, skey))
                        s_s[j * K_SPITCH + skey] = s_all[tid, j]
            assert len(written) == nrows * kN
            # softmax
            for warp in range(4):
                for r in range(4):
                    j = warp + 4 * r
                    if j >= nrows:
                        continue
                    t, lo, hi = s_t[j], s_lo[j], s_hi[j]
                    diag = t + rule.offset
                    sv = np.full((32, 4), -np.inf)
                    for lane in range(32):
                        for c in range(4):
                            kk = lane + 32 * c
                            key = j0 + kk
                            if kk < n and lo <= key < hi:
                                sv[lane, c] = hook(a, s_slope[j], s_s[j * K_SPITCH + kk], t, key, diag)
                    mx = sv.max()
                    m_new = max(m_r[warp, r], mx)
                    if m_new != -np.inf:
                        alpha = 1.0 if m_r[warp, r] == m_new else math.exp(m_r[warp, r] - m_new)
                        sv = np.exp(sv - m_new)
                    else:
                        alpha = 1.0
                        sv = np.zeros((32, 4))
                    l_r[warp, r] = l_r[warp, r] * alpha + sv.sum()
                    m_r[warp, r] = m_new
                    for lane in range(32):
                        for c in range(4):
                            kk = lane + 32 * c
                            if kk < kN:
                                s_s[j * K_SPITCH + kk] = sv[lane, c]
                    s_alpha[j] = alpha
            # P·V
            vt = a['off_v'] + stage * kN * a['v_ld']
            vtile = smem_elems(smem, vt, kN * a['v_ld'] // es, dt).reshape(kN, a['v_ld'] // es)  # rows at v_ld
            for tid in range(K_THREADS):
                ct, row0 = pm(tid)
                pv = np.zeros((2, K_ROWS))
                # the 4-key steps and the tail together read keys kk < n of each (row, column)
                for ci in range(2):
                    c = ct + CT * ci
                    if c >= a['Dv']:
                        continue
                    for jj in range(K_ROWS):
                        if has(row0, jj, nrows):
                            p = s_s[(row0 + jj) * K_SPITCH:(row0 + jj) * K_SPITCH + n]
                            pv[ci, jj] = p @ vtile[:n, c]
                for jj in range(K_ROWS):
                    if has(row0, jj, nrows):
                        o[tid, :, jj] = o[tid, :, jj] * s_alpha[row0 + jj] + pv[:, jj]
        for warp in range(4):
            for r in range(4):
                j = warp + 4 * r
                if j < nrows:
                    s_m[j], s_l[j] = m_r[warp, r], l_r[warp, r]
        if npieces == 1:
            write_output(a, pr, o, s_m, s_l, b, g, x0, nrows, pm, has, out, lse)
            yield
            continue
        sf = a['slot_floats']
        mine = slot * sf
        for tid in range(nrows):
            a['partials'][mine + tid] = s_m[tid]
            a['partials'][mine + K_ROWS + tid] = s_l[tid]
        for tid in range(K_THREADS):
            ct, row0 = pm(tid)
            for jj in range(K_ROWS):
                if has(row0, jj, nrows):
                    for ci in range(2):
                        c = ct + CT * ci
                        if c < a['Dv']:
                            a['partials'][mine + 2 * K_ROWS + (row0 + jj) * a['Dv'] + c] = o[tid, ci, jj]
        yield  # other CTAs may run between the fenced writes and the atomic
        prev = a['counters'][unit]
        a['counters'][unit] += 1
        if prev != npieces - 1:
            continue
        slots = a['pieces'][first][3] * sf
        for j in range(nrows):
            s_m[j] = max(a['partials'][slots + i * sf + j] for i in range(npieces))
        o = np.zeros((K_THREADS, 2, K_ROWS))
        L = np.zeros(K_ROWS)
        for i0 in range(0, npieces, K_SPITCH):
            cnt = min(K_SPITCH, npieces - i0)
            for idx in range(K_ROWS * K_SPITCH):
                j, ii = idx // K_SPITCH, idx % K_SPITCH
                if j < nrows and ii < cnt:
                    M = s_m[j]
                    s_s[idx] = 0.0 if M == -np.inf else math.exp(a['partials'][slots + (i0 + ii) * sf + j] - M)
            for tid in range(nrows):
                for ii in range(cnt):
                    L[tid] += a['partials'][slots + (i0 + ii) * sf + K_ROWS + tid] * s_s[tid * K_SPITCH + ii]
            for tid in range(K_THREADS):
                ct, row0 = pm(tid)
                for jj in range(K_ROWS):
                    if has(row0, jj, nrows):
                        cf = s_s[(row0 + jj) * K_SPITCH:(row0 + jj) * K_SPITCH + cnt]
                        for ci in range(2):
                            c = ct + CT * ci
                            if c < a['Dv']:
                                idx = slots + (i0 + np.arange(cnt)) * sf + 2 * K_ROWS + (row0 + jj) * a['Dv'] + c
                                o[tid, ci, jj] += a['partials'][idx] @ cf
        for tid in range(nrows):
            s_l[tid] = L[tid]
        write_output(a, pr, o, s_m, s_l, b, g, x0, nrows, pm, has, out, lse)
        yield


def write_output(a, pr, o, s_m, s_l, b, g, x0, nrows, pm, has, out, lse):
    CT = a['pv_cols']
    os_, ls = pr['o_strides'], pr['lse_strides']
    for tid in range(K_THREADS):
        ct, row0 = pm(tid)
        for jj in range(K_ROWS):
            if has(row0, jj, nrows):
                j = row0 + jj
                x = x0 + j
                h, t = g * a['group'] + x // a['Sq'], x % a['Sq']
                l = s_l[j]
                inv = 1.0 / l if l > 0 else 0.0
                for ci in range(2):
                    c = ct + CT * ci
                    if c < a['Dv']:
                        idx = b * os_[0] + t * os_[1] + h * os_[2] + c
                        assert np.isnan(out[idx]), 'output written twice'
                        out[idx] = o[tid, ci, jj] * inv
    for tid in range(nrows):
        x = x0 + tid
        h, t = g * a['group'] + x // a['Sq'], x % a['Sq']
        l = s_l[tid]
        idx = b * ls[0] + h * ls[1] + t
        assert np.isnan(lse[idx]), 'lse written twice'
        lse[idx] = s_m[tid] + math.log(l) if l > 0 else -np.inf


def run_kernel(a, pr, grid, seed):
    """All CTAs, interleaved in a random order at every yield (no CTA ever waits for another)."""
    rng = random.Random(seed)
    out = np.full(pr['out_size'], np.nan)
    lse = np.full(pr['lse_size'], np.nan)
    live = [cta(a, pr, blk, out, lse) for blk in range(grid)]
    while live:
        k = rng.randrange(len(live))
        try:
            next(live[k])
        except StopIteration:
            live.pop(k)
    return out, lse


# ----------------------------------------------------------------------------- reference (DESIGN §3)

def reference(pr, kcache, vcache):
    """float64, from the DESIGN text: query i of B×Sq sees key j of [0, Sk) per causal/window, bottom-right."""
    B, Sq, Hq, Hkv, D, Dv = pr['B'], pr['Sq'], pr['Hq'], pr['Hkv'], pr['D'], pr['Dv']
    out = np.zeros((B, Sq, Hq, Dv))
    lse = np.full((B, Hq, Sq), -np.inf)
    for b in range(B):
        Sk = pr['lens'][b]
        seq = pr['seq_ids'][b] if pr['seq_ids'] is not None else b
        K = np.array([kcache(seq, j) for j in range(Sk)]).reshape(Sk, Hkv, D)
        V = np.array([vcache(seq, j) for j in range(Sk)]).reshape(Sk, Hkv, Dv)
        for h in range(Hq):
            hk = h // (Hq // Hkv)
            for i in range(Sq):
                vis = []
                for j in range(Sk):
                    ok = True
                    if pr['causal'] and j > i + Sk - Sq:
                        ok = False
                    if pr['wl'] >= 0 and j < i + Sk - Sq - pr['wl']:
                        ok = False
                    if pr['wr'] >= 0 and j > i + Sk - Sq + pr['wr']:
                        ok = False
                    if ok:
                        vis.append(j)
                if not vis:
                    continue
                q = pr['qref'][b, i, h]
                s = np.array([q @ K[j, hk] for j in vis]) * pr['scale']
                if pr['softcap'] > 0:
                    s = pr['softcap'] * np.tanh(s / pr['softcap'])
                if pr['alibi'] is not None:
                    s = s - pr['alibi'][h] * np.abs(i + Sk - Sq - np.array(vis))
                mx = s.max()
                p = np.exp(s - mx)
                out[b, i, h] = (p[:, None] * V[vis, hk]).sum(0) / p.sum()
                lse[b, h, i] = mx + math.log(p.sum())
    return out, lse


# ----------------------------------------------------------------------------- cases

H100 = dict(num_sms=132, per_sm=2, smem_per_sm=233472, optin=232448)
SM86 = dict(num_sms=84, per_sm=2, smem_per_sm=102400, optin=101376)


def make_case(rng, dt='f16', B=2, Sq=1, Hq=4, Hkv=2, D=64, Dv=None, lens=(40, 100), capacity=None, page_size=0,
              seq_ids=None, append=False, causal=False, wl=-1, wr=-1, softcap=0.0, alibi=False, scale=None,
              strategy='lean', rank3=False, odd_strides=False, k_base=0):
    Dv = Dv or D
    es = DTYPES[dt]
    lens = list(lens)
    n_seq = max(B, (max(seq_ids) + 1) if seq_ids else 0)
    capacity = capacity or max(lens) + 3
    pr = dict(dt=dt, B=B, Sq=Sq, Hq=Hq, Hkv=Hkv, D=D, Dv=Dv, lens=lens, causal=causal, wl=wl, wr=wr, softcap=softcap,
              scale=scale if scale is not None else 1.0 / math.sqrt(D), strategy=strategy,
              seq_ids=seq_ids)
    pad = 1 if odd_strides else 0  # an odd head stride defeats every vector width on 16-bit caches
    if page_size:
        max_pages = (capacity + page_size - 1) // page_size
        num_pages = n_seq * max_pages + 3
        perm = list(range(num_pages))
        rng.shuffle(perm)
        pr['block_table'] = perm[:n_seq * max_pages]
        pr['max_pages'], pr['page_size'] = max_pages, page_size
        outer = num_pages
        rows_per = page_size
    else:
        pr['block_table'] = None
        pr['max_pages'], pr['page_size'] = 0, 1
        outer = n_seq
        rows_per = capacity
    k_s2, v_s2 = D + pad, Dv + pad
    k_s1, v_s1 = Hkv * k_s2 + pad, Hkv * v_s2
    pr['k_strides'] = (rows_per * k_s1, k_s1, k_s2)
    pr['v_strides'] = (rows_per * v_s1, v_s1, v_s2)
    pr['k_base_elems'], pr['v_base_elems'] = k_base, 0
    pr['k_base'], pr['v_base'] = k_base * es, 0
    n_k = k_base + outer * rows_per * k_s1 + 8
    n_v = outer * rows_per * v_s1 + 8
    pr['kmem'] = to_bits(rng_normal(rng, n_k), dt)
    pr['vmem'] = to_bits(rng_normal(rng, n_v), dt)
    pr['kbytes'] = lambda: pr['kmem'].view(np.uint8)
    pr['vbytes'] = lambda: pr['vmem'].view(np.uint8)
    qs = (Sq * Hq * D, 0 if rank3 else Hq * D, D)
    pr['q_strides'] = qs
    qbits = to_bits(rng_normal(rng, B * Sq * Hq * D), dt)
    pr['qf'] = from_bits(qbits, dt)
    pr['qref'] = pr['qf'].reshape(B, Sq, Hq, D)
    pr['alibi'] = [rng.uniform(0.01, 0.3) for _ in range(Hq)] if alibi else None
    pr['o_strides'] = (Sq * Hq * Dv, Hq * Dv, Dv)
    pr['lse_strides'] = (Hq * Sq, Sq)
    pr['out_size'], pr['lse_size'] = B * Sq * Hq * Dv, B * Hq * Sq
    if append:
        pr['kn_strides'] = (Sq * Hkv * D, Hkv * D, D)
        pr['vn_strides'] = (Sq * Hkv * Dv, Hkv * Dv, Dv)
        pr['k_new'] = to_bits(rng_normal(rng, B * Sq * Hkv * D), dt)
        pr['v_new'] = to_bits(rng_normal(rng, B * Sq * Hkv * Dv), dt)
    pr['append'] = append
    return pr


def rng_normal(rng, n):
    return np.random.default_rng(rng.randrange(1 << 30)).standard_normal(n).astype(np.float32)


def run_case(name, dev=H100, seeds=(1, 2), **kw):
    rng = random.Random(hash(name) & 0xFFFF)
    pr = make_case(rng, **kw)
    if pr['append']:
        append_kernel(pr)
    es = DTYPES[pr['dt']]

    def kcache(seq, j):
        o, r = locate(pr, seq, j)
        s = pr['k_strides']
        base = o * s[0] + r * s[1] + pr['k_base_elems']
        return np.concatenate([from_bits(pr['kmem'][base + h * s[2]: base + h * s[2] + pr['D']], pr['dt'])
                               for h in range(pr['Hkv'])])

    def vcache(seq, j):
        o, r = locate(pr, seq, j)
        s = pr['v_strides']
        base = o * s[0] + r * s[1]
        return np.concatenate([from_bits(pr['vmem'][base + h * s[2]: base + h * s[2] + pr['Dv']], pr['dt'])
                               for h in range(pr['Hkv'])])

    ref_out, ref_lse = reference(pr, kcache, vcache)
    results = []
    for seed in seeds:
        a, grid = host_plan(pr, dev)
        out, lse = run_kernel(a, pr, grid, seed)
        assert not np.isnan(out).any(), 'an output element was never written'
        assert not np.isnan(lse).any(), 'an lse element was never written'
        results.append((out.copy(), lse.copy()))
    for out, lse in results[1:]:
        assert np.array_equal(out, results[0][0]) and np.array_equal(lse, results[0][1]), 'not deterministic'
    out, lse = results[0]
    out = out.reshape(pr['B'], pr['Sq'], pr['Hq'], pr['Dv'])
    lse = lse.reshape(pr['B'], pr['Hq'], pr['Sq'])
    err = np.abs(out - ref_out).max()
    fin = np.isfinite(ref_lse)
    assert np.array_equal(fin, np.isfinite(lse)), 'lse -inf pattern differs'
    lerr = np.abs(lse[fin] - ref_lse[fin]).max() if fin.any() else 0.0
    n_pieces, n_units = len(a['pieces']), len(a['unit_pieces']) - 1
    ok = err < 1e-9 and lerr < 1e-9
    print(f"{'ok  ' if ok else 'FAIL'} {name:34s} {a['strategy']:6s} kN={a['kN']:3d} chunks={a['k_chunk']}/{a['v_chunk']} "
          f"CT={a['pv_cols']:3d} units={n_units} pieces={n_pieces} ctas={grid} max|dout|={err:.1e} max|dlse|={lerr:.1e}")
    return ok


def main():
    cases = [
        ('mha f16 lean', dict(dt='f16', Hq=2, Hkv=2, D=64, lens=(300, 77))),
        ('gqa bf16 lean paged seq_ids', dict(dt='bf16', B=2, Hq=8, Hkv=2, D=128, lens=(200, 333), page_size=16,
                                             seq_ids=[2, 0])),
        ('f32 D=256 Dv=200 split', dict(dt='f32', Hq=2, Hkv=1, D=256, Dv=200, lens=(90, 45), strategy='split')),
        ('f16 odd D=37 Dv=5 (plain copies)', dict(dt='f16', Hq=3, Hkv=1, D=37, Dv=5, lens=(70, 20), odd_strides=True)),
        ('f16 D=34, base +4 B: 4-byte chunks', dict(dt='f16', Hq=4, Hkv=2, D=34, Dv=34, lens=(140, 7), k_base=2,
                                                    strategy='split')),
        ('f16 D=20 8-byte chunks single', dict(dt='f16', Hq=2, Hkv=1, D=20, Dv=12, lens=(50, 31), strategy='single')),
        ('causal Sq=3 > Sk: rows see nothing', dict(dt='f16', Sq=3, Hq=4, Hkv=2, D=32, lens=(2, 130), causal=True)),
        ('append paged causal Sq=4', dict(dt='bf16', Sq=4, Hq=4, Hkv=1, D=64, lens=(9, 150), page_size=8,
                                         causal=True, append=True, seq_ids=[1, 0])),
        ('window softcap alibi Sq=2', dict(dt='f32', Sq=2, Hq=6, Hkv=3, D=48, lens=(260, 5), causal=True, wl=37, wr=0,
                                          softcap=3.0, alibi=True)),
        ('rows > 16: MQA group 12 x Sq 3', dict(dt='f16', Sq=3, Hq=12, Hkv=1, D=64, lens=(129, 64), causal=True)),
        ('empty sequence + auto', dict(dt='f16', Hq=2, Hkv=1, D=64, lens=(0, 500), strategy='auto')),
        ('rank3 q, negative scale', dict(dt='bf16', Hq=4, Hkv=4, D=96, lens=(64, 65), rank3=True, scale=-0.2)),
        ('sm86 budget, D=Dv=256 f32 lean', dict(dev=SM86, dt='f32', Hq=2, Hkv=1, D=256, lens=(100, 40))),
        ('lean: 1 unit over 40 ctas', dict(dev=dict(H100, num_sms=20), dt='f16', B=1, Hq=1, Hkv=1, D=16,
                                           lens=(9000,), strategy='lean')),
        ('split: 140 pieces, chunked merge', dict(dev=dict(H100, num_sms=100), dt='f16', B=1, Hq=1, Hkv=1, D=16,
                                                  lens=(128 * 140,), strategy='split', seeds=(1,))),
    ]
    only = sys.argv[1:]
    ok = True
    for name, kw in cases:
        if only and not any(o in name for o in only):
            continue
        ok &= run_case(name, **kw)
    print('all ok' if ok else 'FAILED')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
