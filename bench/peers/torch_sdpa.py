#!/usr/bin/env python3
"""PyTorch SDPA peers for bench/gpu.ts: times torch.nn.functional.scaled_dot_product_attention
with the flash and cuDNN backends on the shapes it is given, the way gpu.ts times fmha.

Input (stdin): {"shapes": [{"key", "B", "H", "S", "D", "causal", "dtype", "flops"}, ...]}
Output (stdout): {"torch", "cuda", "device", "results": {key: {"flash": timing, "cudnn": timing}}}
  timing = {"ms", "minMs", "maxMs", "iters", "tflops"} or {"unsupported": reason}
Progress and errors go to stderr. Run by `node dist/bench/gpu.js` (or by hand with a JSON file on stdin).

Layout: tensors are created [B, S, H, D] (fmha's layout) and passed as .transpose(1, 2)
views, which is the layout flash attention reads without a copy. Sq = Sk, so PyTorch's
top-left is_causal equals fmha's bottom-right causal. Timing: CUDA events around `iters`
back-to-back calls after warm-up, median of 5 runs of ~250 ms, as gpu.ts does.
"""
import json
import sys


def main() -> int:
    req = json.load(sys.stdin)
    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except Exception as e:  # noqa: BLE001 - report any import failure as the reason
        json.dump({"error": f"PyTorch is not importable: {e}"}, sys.stdout)
        return 0
    if not torch.cuda.is_available():
        json.dump({"error": "torch.cuda.is_available() is False"}, sys.stdout)
        return 0

    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    results = {}
    for s in req["shapes"]:
        B, H, S, D, causal = s["B"], s["H"], s["S"], s["D"], bool(s["causal"])
        dt = dtypes[s["dtype"]]
        gen = torch.Generator(device="cuda").manual_seed(1)
        q, k, v = (torch.rand(B, S, H, D, device="cuda", dtype=dt, generator=gen).mul_(2).sub_(1).transpose(1, 2)
                   for _ in range(3))
        row = {}
        for name, backend in backends.items():
            try:
                with sdpa_kernel(backend):
                    def call():
                        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                    for _ in range(3):
                        call()
                    torch.cuda.synchronize()
                    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    call()
                    stop.record()
                    stop.synchronize()
                    once = start.elapsed_time(stop)
                    iters = max(3, min(500, int(250 / max(once, 1e-3)) + 1))
                    runs = []
                    for _ in range(5):
                        start.record()
                        for _ in range(iters):
                            call()
                        stop.record()
                        stop.synchronize()
                        runs.append(start.elapsed_time(stop) / iters)
                runs.sort()
                ms = runs[len(runs) // 2]
                row[name] = {"ms": ms, "minMs": runs[0], "maxMs": runs[-1], "iters": iters,
                             "tflops": s["flops"] / ms / 1e9}
            except Exception as e:  # noqa: BLE001 - a backend that refuses a shape is a result, not a failure
                row[name] = {"unsupported": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
            print(f"[torch] {s['key']} {name}: {row[name]}", file=sys.stderr)
        results[s["key"]] = row
        del q, k, v
        torch.cuda.empty_cache()

    json.dump({
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "device": torch.cuda.get_device_name(0),
        "results": results,
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
