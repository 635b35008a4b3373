"""``python -m cnnkit.speed [--refresh] [--json]``: this machine's measurement and the
defaults cnnkit takes from it (``--refresh`` times the CPU again and rewrites the cache)."""

from __future__ import annotations

import argparse
import json
import sys


def report(refresh: bool = False) -> dict:
    """The measurement, the decisions and the settings, as one JSON-ready dict."""
    import torch

    from . import measure, perf, policy
    m = measure.measure(refresh=refresh)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"measurement": m.as_dict(), "bf16_speedup": round(m.bf16_speedup, 2),
            "cache": str(measure.cache_path()),
            "decisions": {"recipes_cpu_precision": policy.default_precision("cpu", m),
                          "recipes_cpu_amx_fields": policy.bf16_on_matrix_units(m),
                          "jit_kernels_faster": policy.jit_kernels_fast(),
                          "plan": policy.plan(device).as_dict()},
            "settings": perf.settings()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnkit.speed",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--refresh", action="store_true", help="measure again, rewrite the cache")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    from . import policy
    out = report(args.refresh)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    m, d = out["measurement"], out["decisions"]
    threads = f"{m['threads']} thread" + ("s" if m["threads"] > 1 else "")
    print(f"CPU: {m['cpu']} (torch {m['torch']}, measured on {threads})")
    print(f"matmul fp32 {m['fp32_matmul_gflops']:.1f} / bf16 {m['bf16_matmul_gflops']:.1f} "
          f"GFLOP/s; conv fp32 {m['fp32_conv_gflops']:.1f} / bf16 "
          f"{m['bf16_conv_gflops']:.1f} GFLOP/s; "
          f"bf16 speedup {out['bf16_speedup']:.2f}x")
    print(f"recipes' CPU precision: {d['recipes_cpu_precision']}; their cpu_amx fields "
          f"(bf16 on matrix units, >= {policy.BF16_MATRIX}x fp32): "
          f"{'yes' if d['recipes_cpu_amx_fields'] else 'no'}; jit_compile kernels faster "
          f"here: {'yes' if d['jit_kernels_faster'] else 'no'}; cache: {out['cache']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
