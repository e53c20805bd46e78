"""Conv ensembles: R replicas of the paper's image networks trained in one pass, against one model.

For each architecture (the paper's MNIST nets on 28 x 28 images, its COIL-20 nets on 32 x 32),
times generator iterations (the paper's batch 64 and 5 critic steps, float32, random images) of
one model and of an ensemble of R replicas stacked by :func:`scgan_cluster.nn.stack_ensemble`
(grouped convolutions, one group per replica), alternating the two ``--repeats`` times and
keeping the fastest of each. ``ratio`` is the ensemble's wall time over one model's: below R,
the ensemble is cheaper than R separate runs one after the other.

    python benchmarks/bench_conv_ensemble.py --runs 5 --iters 10
    python benchmarks/bench_conv_ensemble.py --runs 5 --iters 200 --device cuda

writes ``benchmarks/results/bench_conv_ensemble.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _protocol import RESULTS, machine, write_json

from scgan_cluster import nn as snn
from scgan_cluster import train
from scgan_cluster.adapters import DenseSource

SHAPES = {"mnist": (1, 28, 28), "coil20": (1, 32, 32)}


def _nets(architecture: str, seed: int, device: str):
    arch = snn.ARCHITECTURES[architecture]
    nets = snn.build_networks(architecture, SHAPES[architecture], arch.defaults["n_latent"], 10)
    gen = torch.Generator().manual_seed(seed)
    for net in nets:
        snn.init_normal_(net, 0.02, generator=gen)
    return [net.to(device) for net in nets]


def time_architecture(architecture: str, n_runs: int, iters: int, repeats: int, device: str):
    """ms per generator iteration of one model and of ``n_runs`` stacked replicas."""
    dev = torch.device(device)
    x = torch.rand((512, *SHAPES[architecture]), generator=torch.Generator().manual_seed(0))
    source = DenseSource(x.to(dev), dev)
    n_latent = snn.ARCHITECTURES[architecture].defaults["n_latent"]
    prior = snn.MixedPrior(n_latent, 10).to(dev)

    def run(nets, n_rep: int, n: int) -> None:
        seeds = range(n_rep)
        train.train_clustergan(
            *nets,
            prior,
            source,
            train.TrainConfig(max_iter=n),
            noise_generator=[torch.Generator(dev).manual_seed(1 + r) for r in seeds]
            if n_rep > 1
            else torch.Generator(dev).manual_seed(1),
            index_generator=[torch.Generator().manual_seed(2 + r) for r in seeds]
            if n_rep > 1
            else torch.Generator().manual_seed(2),
            progress=False,
        )

    def ms_per_it(n_rep: int) -> float:
        if n_rep == 1:
            nets = _nets(architecture, 0, device)
        else:
            reps = [_nets(architecture, r, device) for r in range(n_rep)]
            nets = [snn.stack_ensemble([rep[i] for rep in reps]) for i in range(3)]
        run(nets, n_rep, 2)  # untimed warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(nets, n_rep, iters)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return round((time.perf_counter() - start) / iters * 1e3, 2)

    times: dict[str, list[float]] = {"single": [], "ensemble": []}
    for _ in range(repeats):
        times["single"].append(ms_per_it(1))
        times["ensemble"].append(ms_per_it(n_runs))
        print(architecture, times, flush=True)
    single, ens = min(times["single"]), min(times["ensemble"])
    return {
        "image_shape": list(SHAPES[architecture]),
        "all_repeats_ms_per_it": times,
        "single_ms_per_it": single,
        "ensemble_ms_per_it": ens,
        "ratio": round(ens / single, 2),
        "per_model_speedup": round(n_runs * single / ens, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="replicas R of the ensemble")
    parser.add_argument("--iters", type=int, default=10, help="timed generator iterations")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--architectures", default="mnist,coil20")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_conv_ensemble.json")
    args = parser.parse_args(argv)
    result = {
        "script": "benchmarks/bench_conv_ensemble.py",
        "command": "python benchmarks/bench_conv_ensemble.py "
        f"--runs {args.runs} --iters {args.iters} --repeats {args.repeats} "
        f"--architectures {args.architectures} --device {args.device}",
        "machine": machine(),
        "device": args.device,
        "n_runs": args.runs,
        "settings": "batch 64, n_critic 5, float32, K = 10, the registry's paper networks",
        "architectures": {
            name: time_architecture(name, args.runs, args.iters, args.repeats, args.device)
            for name in args.architectures.split(",")
        },
    }
    write_json(args.out, result)
    print(result)
    return result


if __name__ == "__main__":
    main()
