"""Side-by-side training speed: a naive reference loop vs the package trainer, one process.

Both train the same networks (same initial weights) on the same data with the paper's
hyperparameters (batch 64, n_critic 5, Adam 1e-4 / (0.5, 0.9), gradient penalty 10, beta_n =
beta_c = 10) for the same number of generator iterations. The naive loop is
``benchmarks/_naive.py`` (DataLoader, fresh noise every step, separate critic passes,
``autograd.grad(create_graph=True)`` penalty, default Adam, ``.item()`` every step); the package
trainer is :func:`scgan_cluster.train.train_clustergan` with its defaults. Models:

* ``mlp``: the paper's 10x_73k MLP (720 genes, K = 8, zn 30; FC256-LReLU x2 in G, E and D), on
  generated data with ~40% zeros (values do not change the cost);
* ``conv``: the package's ``"mnist"`` registry entry (the paper's DCGAN-style conv G / E / D,
  appendix 6.2) on random 1 x 28 x 28 images, K = 10, zn 30.

The package trainer is also timed with ``precision="bf16"`` (bfloat16 matrix products and
convolutions, float32 parameters, losses and Adam: the MLP's hand-written steps cast by
themselves, the conv model's autograd steps run under bf16 autocast); for the MLP, with
``--compile``, with ``compile=True`` (``torch.compile`` of the hand-written steps; compiled in the
untimed warm-up) in float32 and bf16; for the conv model, with ``--channels-last``, in bf16 with
networks and data in the channels-last memory format. ``--ablation`` also times the package
trainer with single levers switched back off. Each measurement is repeated ``--repeats`` times
(naive and package interleaved) and the fastest kept.

    python benchmarks/bench_train.py                    # both models, CPU (or CUDA if present)
    python benchmarks/bench_train.py --models mlp --iters 300 --ablation
    python benchmarks/bench_train.py --models mlp --compile --repeats 3
    python benchmarks/bench_train.py --models conv --channels-last --repeats 2

writes ``benchmarks/results/bench_train.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch
from _naive import naive_train
from _protocol import RESULTS, machine, write_json

from scgan_cluster import nn as snn
from scgan_cluster import train
from scgan_cluster.adapters import DenseSource

MODELS = {
    "mlp": {"n_latent": 30, "n_clusters": 8, "n_obs": 4096, "iters": 300, "warmup": 10},
    "conv": {"n_latent": 30, "n_clusters": 10, "n_obs": 2048, "iters": 8, "warmup": 2},
}


def _rss_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":", 1)
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": out.get("VmRSS"), "peak_rss_mb_so_far": out.get("VmHWM")}


def build(
    model: str,
    device: torch.device,
    seed: int = 0,
    memory_format: torch.memory_format = torch.contiguous_format,
):
    spec = MODELS[model]
    gen = torch.Generator().manual_seed(seed)
    if model == "mlp":
        g, e, c = snn.build_networks("mlp", 720, spec["n_latent"], spec["n_clusters"])
        x = torch.rand(spec["n_obs"], 720, generator=gen)
        x = x * (torch.rand(spec["n_obs"], 720, generator=gen) > 0.4)
    else:
        g, e, c = snn.build_networks("mnist", (1, 28, 28), spec["n_latent"], spec["n_clusters"])
        x = torch.rand(spec["n_obs"], 1, 28, 28, generator=gen)
    for net in (g, e, c):
        snn.init_normal_(net, 0.02, generator=gen)
    nets = [net.to(device, memory_format=memory_format) for net in (g, e, c)]
    return (*nets, x.to(device).contiguous(memory_format=memory_format))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_naive(model: str, device: torch.device, iters: int, warmup: int) -> float:
    spec = MODELS[model]
    g, e, c, x = build(model, device)
    if device.type != "cpu":
        raise SystemExit("the naive reference loop runs on CPU tensors only")
    kw = {"n_latent": spec["n_latent"], "n_clusters": spec["n_clusters"]}
    naive_train(g, e, c, x, max_iter=warmup, **kw)
    start = time.perf_counter()
    naive_train(g, e, c, x, max_iter=iters, **kw)
    return (time.perf_counter() - start) / iters


class _UnfusedAdam(torch.optim.Adam):
    def __init__(self, params, **kw):
        kw.pop("fused", None)
        kw.pop("foreach", None)
        super().__init__(params, **kw)


@contextlib.contextmanager
def _plain_adam():
    original = torch.optim.Adam
    torch.optim.Adam = _UnfusedAdam
    try:
        yield
    finally:
        torch.optim.Adam = original


def time_package(
    model: str,
    device: torch.device,
    iters: int,
    warmup: int,
    memory_format: torch.memory_format = torch.contiguous_format,
    **options,
) -> float:
    spec = MODELS[model]
    g, e, c, x = build(model, device, memory_format=memory_format)
    prior = snn.MixedPrior(spec["n_latent"], spec["n_clusters"]).to(device)
    source = DenseSource(x, device)

    def run(n: int) -> None:
        train.train_clustergan(
            g,
            e,
            c,
            prior,
            source,
            train.TrainConfig(max_iter=n),
            noise_generator=torch.Generator(device=device).manual_seed(1),
            index_generator=torch.Generator().manual_seed(2),
            progress=False,
            **options,
        )

    run(warmup)
    _sync(device)
    start = time.perf_counter()
    run(iters)
    _sync(device)
    return (time.perf_counter() - start) / iters


ABLATION = {
    "package defaults": {},
    "autograd instead of hand-written gradients": {"gradients": "autograd"},
    "autograd double-backward penalty": {"penalty": "autograd"},
    "separate real / fake critic passes": {"joint_critic_batch": False},
    "draws sampled every iteration (block=1)": {"block": 1},
    "default (for-loop) Adam": {"_plain_adam": True},
    "none of the levers": {
        "gradients": "autograd",
        "penalty": "autograd",
        "joint_critic_batch": False,
        "block": 1,
        "_plain_adam": True,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--iters", type=int, default=None, help="override per-model iterations")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time compile=True (MLP)")
    parser.add_argument(
        "--channels-last", action="store_true", help="also time bf16 in channels-last (conv)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_train.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    info = {**machine(), "device": str(device)}
    print(info)
    # rows of models not rerun now are kept from the existing file
    kept = []
    if args.out.exists():
        kept = [
            r
            for r in json.loads(args.out.read_text()).get("results", [])
            if r["model"] not in args.models
        ]

    def save(rows: list[dict]) -> None:  # after every measurement, so a cut-off run keeps its rows
        write_json(
            args.out,
            {"script": "benchmarks/bench_train.py", "machine": info, "results": kept + rows},
        )

    results = []
    for model in args.models:
        iters = args.iters or MODELS[model]["iters"]
        warmup = MODELS[model]["warmup"]
        row: dict = {
            "model": model,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "iterations": iters,
            "batch_size": 64,
            "n_critic": 5,
        }
        if model == "conv":
            row["networks"] = 'scgan_cluster.nn.build_networks("mnist", (1, 28, 28), 30, 10)'
        # naive and package alternate, --repeats times; the fastest of each is kept (the
        # least disturbed by anything else running on the machine)
        naive_s, package_s, bf16_s, bf16_cl_s = [], [], [], []
        compiled: dict[str, list[float]] = {"fp32": [], "bf16": []}
        mlp = model == "mlp"  # compile=True needs the hand-written steps (fully connected)
        channels_last = model == "conv" and args.channels_last
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(args.repeats):
            if device.type == "cpu":
                naive_s.append(time_naive(model, device, iters, warmup))
                row["after_naive"] = _rss_mb()
            package_s.append(time_package(model, device, iters, warmup))
            bf16_s.append(time_package(model, device, iters, warmup, precision="bf16"))
            if channels_last:
                bf16_cl_s.append(
                    time_package(
                        model,
                        device,
                        iters,
                        warmup,
                        memory_format=torch.channels_last,
                        precision="bf16",
                    )
                )
            if mlp and args.compile:
                for precision, times in compiled.items():
                    times.append(
                        time_package(
                            model, device, iters, warmup, precision=precision, compile=True
                        )
                    )
        if naive_s:
            sec = min(naive_s)
            row["naive_ms_per_it"] = round(sec * 1e3, 2)
            row["naive_it_per_s"] = round(1 / sec, 2)
            row["naive_ms_per_it_all_repeats"] = [round(t * 1e3, 2) for t in naive_s]
        sec = min(package_s)
        row["package_ms_per_it_all_repeats"] = [round(t * 1e3, 2) for t in package_s]
        row["package_ms_per_it"] = round(sec * 1e3, 2)
        row["package_it_per_s"] = round(1 / sec, 2)
        package_variants = {
            "bf16": bf16_s,
            "bf16_channels_last": bf16_cl_s,
            **{f"compile_{precision}": times for precision, times in compiled.items()},
        }
        for key, times in package_variants.items():
            if times:
                row[f"package_{key}_ms_per_it_all_repeats"] = [round(t * 1e3, 2) for t in times]
                row[f"package_{key}_ms_per_it"] = round(min(times) * 1e3, 2)
                if naive_s:
                    row[f"speedup_{key}"] = round(min(naive_s) / min(times), 2)
        row["after_package"] = _rss_mb()
        if device.type == "cuda":
            row["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        if "naive_ms_per_it" in row:
            row["speedup"] = round(row["naive_ms_per_it"] / row["package_ms_per_it"], 2)
        print(
            f"{model}: naive {row.get('naive_it_per_s', float('nan')):.2f} it/s "
            f"({row.get('naive_ms_per_it', float('nan')):.1f} ms/it), package "
            f"{row['package_it_per_s']:.2f} it/s ({row['package_ms_per_it']:.1f} ms/it), "
            f"speedup x{row.get('speedup', float('nan'))}; bf16 "
            f"{row.get('package_bf16_ms_per_it', float('nan')):.1f} ms/it, speedup "
            f"x{row.get('speedup_bf16', float('nan'))}; bf16 channels-last "
            f"{row.get('package_bf16_channels_last_ms_per_it', float('nan')):.1f} ms/it; "
            "compiled fp32 / bf16 "
            f"{row.get('package_compile_fp32_ms_per_it', float('nan')):.1f} / "
            f"{row.get('package_compile_bf16_ms_per_it', float('nan')):.1f} ms/it; "
            f"{row['after_package']}",
            flush=True,
        )
        results.append(row)
        save(results)
        if args.ablation:
            row["ablation_ms_per_it"] = {}
            for name, opts in ABLATION.items():
                if model == "conv" and name.startswith(("autograd instead", "per-parameter")):
                    continue  # conv networks always use autograd (no hand-written gradients)
                opts = dict(opts)
                plain = opts.pop("_plain_adam", False)
                with _plain_adam() if plain else contextlib.nullcontext():
                    sec = min(
                        time_package(model, device, iters, warmup, **opts)
                        for _ in range(args.repeats)
                    )
                row["ablation_ms_per_it"][name] = round(sec * 1e3, 2)
                print(f"  {name:<42} {sec * 1e3:7.1f} ms/it", flush=True)
                save(results)
    save(results)


if __name__ == "__main__":
    main()
