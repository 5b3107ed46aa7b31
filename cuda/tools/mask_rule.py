"""The visible-key interval of cuda/score_policy.cuh's MaskRule, shared by the
index models of the flash and decode kernels: query row i (of Sq, aligned
bottom-right by offset = Sk - Sq) sees keys [lo(i), hi(i))."""


class MaskRule:  # score_policy.cuh
    def __init__(self, offset, kv_len, causal, wl, wr):
        self.offset, self.kv_len, self.causal, self.wl, self.wr = offset, kv_len, causal, wl, wr

    def lo(self, i):
        d = i + self.offset
        return max(0, d - self.wl) if self.wl >= 0 else 0

    def hi(self, i):
        d = i + self.offset
        h = self.kv_len
        if self.causal:
            h = min(h, d + 1)
        if self.wr >= 0:
            h = min(h, d + self.wr + 1)
        return h
