#!/usr/bin/env python3
"""Index-math model of cuda/flash_fwd_kernel.cuh, run on the CPU with numpy.

No GPU was available when the kernel was written, so this script replays the
kernel's exact integer arithmetic -- the XOR swizzle, the cp.async tile copy,
the per-lane ldmatrix addresses (with the two-parity base shortcut), the
mma.sync m16n8k16 fragment layouts, the C -> A fragment reuse for P, the online
softmax with exp2, the masked/mask-free block split, the epilogue staging and
the lse -- one warp instruction at a time, and compares every CTA's output and
lse with an independent float64 reference of DESIGN.md §3.

What it proves: the index math is consistent with the PTX fragment and
ldmatrix semantics as documented (encoded in ldmatrix_x4 / mma below). What it
cannot prove: that the CUDA code matches this model line for line (keep them in
step when editing either), nor anything about timing or memory ordering.

    python3 cuda/tools/flash_index_model.py        # a few minutes; prints one line per case
"""
import math
import sys

import numpy as np

from mask_rule import MaskRule

# The tile table of flash_fwd_kernel.cuh: D -> (warps, BlockN).
TILES = {32: (8, 64), 64: (4, 64), 96: (8, 64), 128: (8, 64), 192: (4, 64), 256: (4, 32)}
LOG2E = 1.4426950408889634
LANE = np.arange(32)
G, T = LANE >> 2, LANE & 3


def f16(x):
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


def swz(rows, r, col):
    return (col >> 5) * (rows * 32) + r * 32 + ((((col >> 3) & 3) ^ ((r >> 1) & 3)) << 3) + (col & 7)


def load_tile(smem, base, rows, D, threads, src, rows_valid):
    """cp.async tile copy: src[r] is tile row r (r < rows_valid); other rows are zero-filled."""
    chunks = D // 8
    total = rows * chunks
    assert total % threads == 0
    for it in range(total // threads):
        for tid in range(threads):
            i = tid + it * threads
            r, c = i // chunks, i % chunks
            dst = base + swz(rows, r, c * 8)
            smem[dst:dst + 8] = src[r, c * 8:c * 8 + 8] if r < rows_valid else 0.0


def ldmatrix_x4(smem, addr, trans=False):
    """addr[lane]: element offset of row (lane & 7) of matrix (lane >> 3). Returns regs[4] of (32, 2)."""
    out = []
    for m in range(4):
        mat = np.stack([smem[addr[8 * m + rr]:addr[8 * m + rr] + 8] for rr in range(8)])  # 8 x 8
        if trans:
            mat = mat.T
        out.append(np.stack([mat[G, 2 * T], mat[G, 2 * T + 1]], axis=1))  # lane: (row g, cols 2t, 2t+1)
    return out


def mma(d, a, b0, b1):
    """d: (32, 4) fp32 C/D fragments; a: 4 regs (32, 2); b0, b1: (32, 2). d += A·B (m16n8k16)."""
    A = np.zeros((16, 16), np.float64)
    A[G, 2 * T], A[G, 2 * T + 1] = a[0][:, 0], a[0][:, 1]
    A[G + 8, 2 * T], A[G + 8, 2 * T + 1] = a[1][:, 0], a[1][:, 1]
    A[G, 2 * T + 8], A[G, 2 * T + 9] = a[2][:, 0], a[2][:, 1]
    A[G + 8, 2 * T + 8], A[G + 8, 2 * T + 9] = a[3][:, 0], a[3][:, 1]
    B = np.zeros((16, 8), np.float64)
    B[2 * T, G], B[2 * T + 1, G] = b0[:, 0], b0[:, 1]
    B[2 * T + 8, G], B[2 * T + 9, G] = b1[:, 0], b1[:, 1]
    C = np.zeros((16, 8), np.float64)
    C[G, 2 * T], C[G, 2 * T + 1], C[G + 8, 2 * T], C[G + 8, 2 * T + 1] = d[:, 0], d[:, 1], d[:, 2], d[:, 3]
    C += A @ B
    d[:, 0], d[:, 1], d[:, 2], d[:, 3] = C[G, 2 * T], C[G, 2 * T + 1], C[G + 8, 2 * T], C[G + 8, 2 * T + 1]


def hook(prob, x, b, h, i, j, diag):  # ScoreHooks<T, true>
    s = np.float32(x * prob['scale'])
    if prob['softcap'] > 0:
        s = prob['softcap'] * (1.0 - 2.0 / (1.0 + math.exp(2.0 * s / prob['softcap'])))
    if prob['alibi'] is not None:
        s -= prob['alibi'][h] * abs(diag - j)
    if prob['bias'] is not None:
        s += prob['bias'][b, h, i, j]
    return s


def cta(prob, D, b, h, m_block, out, lse):
    """One CTA of flash_fwd_kernel<D, half>, warp by warp."""
    warps, BN = TILES[D]
    BM, threads = 16 * warps, 32 * warps
    NT, DT = BN // 8, D // 8
    smem = np.zeros((BM + 2 * BN) * D, np.float32)
    sQ, sK, sV = 0, BM * D, BM * D + BN * D
    q_row0, sq, k_row0, sk = prob['seq'][b]
    kv_len = prob['seqlens_k'][b] if prob['seqlens_k'] is not None else sk
    i0 = m_block * BM
    if i0 >= sq:
        return
    rows_valid = min(BM, sq - i0)
    rule = MaskRule(sk - sq, kv_len, prob['causal'], prob['wl'], prob['wr'])
    hooks = prob['hooks']
    sm = LOG2E if hooks else prob['scale'] * LOG2E
    i_last = i0 + rows_valid - 1
    k_begin, k_end = rule.lo(i0), rule.hi(i_last)
    n_min = n_max = 0
    if k_end > k_begin:
        n_min, n_max = k_begin // BN, (k_end + BN - 1) // BN
    full_lo, full_hi = rule.lo(i_last), rule.hi(i0)
    hk = h // prob['group']
    Q = prob['q'][q_row0 + i0:, h]  # rows of this tile (b folded into the packed row index)
    K = prob['k'][k_row0:, hk]
    V = prob['v'][k_row0:, hk]

    acc_o = [np.zeros((32, DT, 4)) for _ in range(warps)]
    m_i = [np.full((32, 2), -np.inf) for _ in range(warps)]
    l_i = [np.zeros((32, 2)) for _ in range(warps)]

    def addr2(base, rows, row, col):
        return [base + swz(rows, row, col), base + swz(rows, row, 16 + col)]

    kb_row = (LANE & 7) + ((LANE >> 4) & 1) * 8
    kb_col = ((LANE >> 3) & 1) * 8
    vb_row = (LANE & 7) + ((LANE >> 3) & 1) * 8
    vb_col = (LANE >> 4) * 8
    k_addr = addr2(sK, BN, kb_row, kb_col)
    v_addr = addr2(sV, BN, vb_row, vb_col)

    if n_max > n_min:
        n = n_max - 1
        load_tile(smem, sQ, BM, D, threads, Q, rows_valid)
        load_tile(smem, sK, BN, D, threads, K[n * BN:], min(BN, kv_len - n * BN))
        while n >= n_min:
            kb = n * BN
            load_tile(smem, sV, BN, D, threads, V[kb:], min(BN, kv_len - kb))
            S = []
            for w in range(warps):
                a_row = w * 16 + (LANE & 7) + ((LANE >> 3) & 1) * 8
                a_col = (LANE >> 4) * 8
                q_addr = addr2(sQ, BM, a_row, a_col)
                s = np.zeros((32, NT, 4))
                for kk in range(0, D, 16):
                    af = ldmatrix_x4(smem, q_addr[(kk >> 4) & 1] + (kk >> 5) * BM * 32)
                    for np_ in range(NT // 2):
                        bf = ldmatrix_x4(smem, k_addr[(kk >> 4) & 1] + (kk >> 5) * BN * 32 + np_ * 512)
                        s2 = s[:, 2 * np_].copy(); mma(s2, af, bf[0], bf[1]); s[:, 2 * np_] = s2
                        s2 = s[:, 2 * np_ + 1].copy(); mma(s2, af, bf[2], bf[3]); s[:, 2 * np_ + 1] = s2
                if hooks or kb < full_lo or kb + BN > full_hi:  # mask_scores
                    for lane in range(32):
                        for rr in range(2):
                            i = i0 + w * 16 + G[lane] + 8 * rr
                            lo = rule.lo(i)
                            hi = rule.hi(i) if i < sq else lo
                            diag = i + rule.offset
                            for j in range(NT):
                                for e in range(2):
                                    key = kb + 2 * T[lane] + 8 * j + e
                                    if key < lo or key >= hi:
                                        s[lane, j, 2 * rr + e] = -np.inf
                                    elif hooks:
                                        s[lane, j, 2 * rr + e] = hook(prob, s[lane, j, 2 * rr + e], b, h, i, key, diag)
                S.append(s)
            if n > n_min:  # the kernel issues K(n-1) here, after every warp's Q·Kᵀ
                load_tile(smem, sK, BN, D, threads, K[kb - BN:], min(BN, kv_len - (kb - BN)))
            for w in range(warps):
                s = S[w]
                for rr in range(2):
                    mx = s[:, :, 2 * rr:2 * rr + 2].reshape(32, -1).max(axis=1)
                    mx = mx.reshape(8, 4).max(axis=1).repeat(4)  # quad all-reduce (xor 1, 2)
                    m_new = np.maximum(m_i[w][:, rr], mx)
                    ref = np.where(m_new == -np.inf, 0.0, m_new * sm)
                    with np.errstate(invalid='ignore'):
                        alpha = np.exp2(m_i[w][:, rr] * sm - ref)
                    m_i[w][:, rr] = m_new
                    p = np.exp2(s[:, :, 2 * rr:2 * rr + 2] * sm - ref[:, None, None])
                    s[:, :, 2 * rr:2 * rr + 2] = p
                    l_i[w][:, rr] = l_i[w][:, rr] * alpha + p.reshape(32, -1).sum(axis=1)
                    acc_o[w][:, :, 2 * rr:2 * rr + 2] *= alpha[:, None, None]
                for ks in range(NT // 2):
                    pf = [f16(s[:, 2 * ks, 0:2]), f16(s[:, 2 * ks, 2:4]),
                          f16(s[:, 2 * ks + 1, 0:2]), f16(s[:, 2 * ks + 1, 2:4])]
                    for dp in range(DT // 2):
                        bf = ldmatrix_x4(smem, v_addr[dp & 1] + (dp >> 1) * BN * 32 + ks * 512, trans=True)
                        o2 = acc_o[w][:, 2 * dp].copy(); mma(o2, pf, bf[0], bf[1]); acc_o[w][:, 2 * dp] = o2
                        o2 = acc_o[w][:, 2 * dp + 1].copy(); mma(o2, pf, bf[2], bf[3]); acc_o[w][:, 2 * dp + 1] = o2
            n -= 1

    for w in range(warps):
        lsum = l_i[w].reshape(8, 4, 2).sum(axis=1).repeat(4, axis=0)  # quad sum
        inv = np.where(lsum > 0, 1.0 / np.where(lsum > 0, lsum, 1.0), 0.0)
        for j in range(DT):
            for rr in range(2):
                row = w * 16 + G + 8 * rr
                for lane in range(32):
                    off = sQ + swz(BM, row[lane], j * 8 + 2 * T[lane])
                    smem[off:off + 2] = f16(acc_o[w][lane, j, 2 * rr:2 * rr + 2] * inv[lane, rr])
        chunks = D // 8
        for lane in range(32):
            for i in range(lane, 16 * chunks, 32):
                r, c = i // chunks, i % chunks
                row = w * 16 + r
                if row < rows_valid:
                    src = sQ + swz(BM, row, c * 8)
                    out[q_row0 + i0 + row, h, c * 8:c * 8 + 8] = smem[src:src + 8]
        for lane in range(0, 32, 4):
            for rr in range(2):
                row = w * 16 + G[lane] + 8 * rr
                if row < rows_valid:
                    m_nat = m_i[w][lane, rr] if hooks else m_i[w][lane, rr] * prob['scale']
                    l = lsum[lane, rr]
                    lse[h, q_row0 + i0 + row] = m_nat + math.log(l) if l > 0 else -np.inf


def reference(prob):
    """float64, straight from DESIGN.md §3."""
    q, k, v = (x.astype(np.float64) for x in (prob['q'], prob['k'], prob['v']))
    Tq, Hq, D = q.shape
    out = np.zeros((Tq, Hq, v.shape[2]))
    lse = np.full((Hq, Tq), np.nan)
    for b, (q0, sq, k0, sk) in enumerate(prob['seq']):
        kv_len = prob['seqlens_k'][b] if prob['seqlens_k'] is not None else sk
        for h in range(Hq):
            hk = h // prob['group']
            for i in range(sq):
                diag = i + sk - sq
                s = (k[k0:k0 + sk, hk] @ q[q0 + i, h]) * prob['scale']
                if prob['softcap'] > 0:
                    s = prob['softcap'] * np.tanh(s / prob['softcap'])
                j = np.arange(sk)
                if prob['alibi'] is not None:
                    s = s - prob['alibi'][h] * np.abs(diag - j)
                if prob['bias'] is not None:
                    s = s + prob['bias'][b, h, i, :sk]
                vis = j < kv_len
                if prob['causal']:
                    vis &= j <= diag
                if prob['wl'] >= 0:
                    vis &= j >= diag - prob['wl']
                if prob['wr'] >= 0:
                    vis &= j <= diag + prob['wr']
                s = np.where(vis, s, -np.inf)
                mx = s.max() if vis.any() else -np.inf
                if mx == -np.inf:
                    lse[h, q0 + i] = -np.inf
                    continue
                e = np.exp(s - mx)
                out[q0 + i, h] = e @ v[k0:k0 + sk, hk] / e.sum()
                lse[h, q0 + i] = mx + math.log(e.sum())
    return out, lse


def run_case(name, D, seq, Hq=2, Hkv=1, causal=False, wl=-1, wr=-1, softcap=0.0, alibi=False, bias=False,
             seqlens_k=None, scale=None, seed=0):
    rng = np.random.default_rng(seed)
    Tq = max(q0 + sq for q0, sq, _, _ in seq)
    Tk = max(k0 + sk for _, _, k0, sk in seq)
    prob = dict(q=f16(rng.standard_normal((Tq, Hq, D))), k=f16(rng.standard_normal((Tk, Hkv, D))),
                v=f16(rng.standard_normal((Tk, Hkv, D))), seq=seq, group=Hq // Hkv, causal=causal, wl=wl, wr=wr,
                softcap=softcap, scale=scale if scale is not None else 1.0 / math.sqrt(D),
                alibi=rng.uniform(0.01, 0.3, Hq) if alibi else None, seqlens_k=seqlens_k, bias=None)
    if bias:
        Sq = max(sq for _, sq, _, _ in seq); Sk = max(sk for _, _, _, sk in seq)
        bb = f16(rng.standard_normal((len(seq), Hq, Sq, Sk)))
        bb[0, 0, 1, :] = -np.inf  # a row that sees no key through the bias alone
        prob['bias'] = bb
    prob['hooks'] = softcap > 0 or alibi or bias or not prob['scale'] > 0
    out = np.full((Tq, Hq, D), np.nan)
    lse = np.full((Hq, Tq), np.nan)
    warps, BN = TILES[D]
    Sq = max(sq for _, sq, _, _ in seq)
    for b in range(len(seq)):
        for h in range(Hq):
            for mb in range((Sq + 16 * warps - 1) // (16 * warps)):
                cta(prob, D, b, h, mb, out, lse)
    ref_out, ref_lse = reference(prob)
    rows = np.concatenate([np.arange(q0, q0 + sq) for q0, sq, _, _ in seq]).astype(int)
    o, ro = out[rows], ref_out[rows]
    assert not np.isnan(o).any(), name + ': unwritten output rows'
    err = np.linalg.norm(o - ro) / max(np.linalg.norm(ro), 1e-30)
    l, rl = lse[:, rows], ref_lse[:, rows]
    inf_ok = np.array_equal(np.isneginf(l), np.isneginf(rl))
    fin = np.isfinite(rl)
    lse_err = np.max(np.abs(l[fin] - rl[fin]) / np.maximum(1, np.abs(rl[fin]))) if fin.any() else 0.0
    ok = err < 2e-3 and lse_err < 1e-2 and inf_ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: out rel err {err:.2e}, lse err {lse_err:.2e}, -inf match {inf_ok}")
    return ok


def padded(B, Sq, Sk):
    return [(b * Sq, Sq, b * Sk, Sk) for b in range(B)]


def main():
    cases = [
        ('D64 plain', 64, padded(1, 70, 150), {}),
        ('D128 causal Sq<Sk', 128, padded(1, 40, 200), dict(causal=True)),
        ('D32 causal Sq>Sk (empty rows)', 32, padded(1, 150, 60), dict(causal=True, Hq=4, Hkv=2)),
        ('D96 window', 96, padded(1, 130, 130), dict(wl=20, wr=5)),
        ('D64 hooks', 64, padded(2, 33, 90), dict(softcap=5.0, alibi=True, bias=True, causal=True)),
        ('D64 seqlensK', 64, padded(2, 20, 130), dict(seqlens_k=[70, 0])),
        ('D192 varlen', 192, [(0, 5, 0, 80), (5, 0, 80, 7), (5, 70, 87, 70)], dict(causal=True)),
        ('D256 varlen window', 256, [(0, 3, 0, 3), (3, 66, 3, 100)], dict(wl=40, wr=0)),
        ('D128 negative scale', 128, padded(1, 17, 70), dict(scale=-0.05)),
    ]
    only = sys.argv[1:]
    ok = all(run_case(n, D, s, **kw) for n, D, s, kw in cases if not only or any(o in n for o in only))
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
