"""The paper's other MNIST experiments: Table 3 (robustness to K) and Section 2.6 / 5 mode accuracy.

Only the MNIST test set (10,000 images) is staged, so everything runs on it: the paper split
(``_protocol.paper_split``, seed 0) gives train / validation / test parts of those 10,000 images.

* Table 3: ClusterGAN with K = 7, 9, 10, 11, 13 trained on the train part, KMeans on the encoder
  latent, purity (the paper's "ACC") and the other metrics on the test part.
* Mode, reconstruction and cluster accuracy (Section 2.6 of the paper), for the K = 10 model,
  judged by a small supervised CNN trained here on the train part's labels (the paper's
  classifier had 99.2% test accuracy; ours is reported). Definitions implemented:

  - mode accuracy: draw ``--per-mode`` samples ``G(zn, e_k)`` from each mode k, classify them;
    mode k is mapped to its most frequent predicted digit ``pi(k)``; the accuracy is the fraction
    of all generated samples classified as ``pi`` of their mode;
  - reconstruction accuracy: each real test image x (label y) is decoded by Algorithm 1 to z*,
    ``G(z*)`` is classified as y_hat; the accuracy is the fraction with y_hat == y;
  - cluster accuracy: the fraction of real test images whose decoded mode k* maps to their own
    digit, ``pi(k*) == y`` (points of one class should share one one-hot code, the code of the
    mode that generates that class).

  Algorithm 1 is costly on a CPU, so these two use ``--bp-points`` test images; the same two
  accuracies with the encoder instead of Algorithm 1 (z = (E_n(x), e_argmax E_c(x))) are reported
  on the whole test part as well.
* Figures: generated samples per cluster (one row per zc mode) and interpolation between modes
  (zn fixed, zc = mu e_i + (1 - mu) e_j), PNGs under ``results/`` drawn by
  ``scgan_cluster.pl.cluster_samples`` and ``scgan_cluster.pl.interpolation``.

    python benchmarks/paper_mnist.py                  # CPU budget (labelled in the outputs)
    python benchmarks/paper_mnist.py --paper          # 100,000 iterations, 5,000 bp steps
    python benchmarks/paper_mnist.py --paper --device cuda --checkpoint-dir checkpoints

Writes ``results/paper_mnist.json`` and ``results/paper_mnist.md`` (``--tag T``:
``results/paper_mnist_T.*``, figures included, beside the others).

``--checkpoint-dir DIR`` keeps each K's training state in DIR, so that a stopped run continues.
The K = 10 model's file is the one that ``paper_table1.py --datasets mnist --runs 1`` writes with
the same folder and budget: after that run, Section 2.6 and the figures read its finished model
instead of training it again (the signature stored in the file refuses a different setting)::

    python benchmarks/paper_table1.py --datasets mnist --methods ClusterGAN --runs 1 \
        --max-iter 8000 --curve-every 800 --merge --tag 8k --checkpoint-dir checkpoints
    python benchmarks/paper_mnist.py --max-iter 8000 --ks 10 --bp-steps 1000 --tag 8k \
        --checkpoint-dir checkpoints
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _baselines import clustergan_checkpoint, fit_clustergan
from _data import load
from _protocol import DEFAULT_DATA, RESULTS, hardware, machine, paper_split, score, write_json
from torch import nn

import scgan_cluster as scg
from scgan_cluster.train import backprop_decode

PAPER_TABLE3 = {7: 0.72, 9: 0.80, 10: 0.95, 11: 0.90, 13: 0.84}  # ACC (= purity)
PAPER_SECTION5 = {"mode_accuracy": 0.97, "reconstruction_accuracy": 0.96, "cluster_accuracy": 0.95}
PAPER_CLASSIFIER_ACCURACY = 0.992


# ----------------------------------------------------------------------------- classifier
class DigitCNN(nn.Module):
    """A small supervised CNN: conv32-pool-conv64-pool-FC128-FC10 on 28 x 28 images."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, 1, 28, 28))


def train_classifier(
    x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int = 0, batch_size: int = 128
) -> DigitCNN:
    """Train :class:`DigitCNN` with Adam (lr 1e-3) and cross-entropy."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = DigitCNN()
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    order = torch.Generator().manual_seed(seed)
    clf.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=order)
        for start in range(0, len(xt), batch_size):
            idx = perm[start : start + batch_size]
            loss = nn.functional.cross_entropy(clf(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    clf.eval()
    return clf


@torch.no_grad()
def classify(clf: nn.Module, x: torch.Tensor | np.ndarray, chunk: int = 1024) -> np.ndarray:
    x = torch.as_tensor(x)
    return torch.cat([clf(x[i : i + chunk]).argmax(1) for i in range(0, len(x), chunk)]).numpy()


# ----------------------------------------------------------------------------- Section 5
@torch.no_grad()
def _generate(model, z: torch.Tensor) -> torch.Tensor:
    """Generator output for latents ``z`` (on any device), in chunks, on the CPU."""
    model.generator.eval()
    return torch.cat(
        [model.generator(z[i : i + 1024].to(model.device)) for i in range(0, len(z), 1024)]
    ).cpu()


def mode_accuracy(
    model, clf: nn.Module, *, per_mode: int, seed: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mode accuracy, the map mode -> digit (majority vote) and the per-mode vote counts."""
    k = model.n_clusters
    modes = torch.arange(k).repeat_interleave(per_mode)
    z, _, _ = model.prior.sample(
        len(modes),
        generator=torch.Generator(device=model.device).manual_seed(seed),
        cluster=modes,
    )
    pred = classify(clf, _generate(model, z))
    counts = np.zeros((k, 10), dtype=np.int64)
    np.add.at(counts, (modes.numpy(), pred), 1)
    mapping = counts.argmax(1)
    return float((pred == mapping[modes.numpy()]).mean()), mapping, counts


def decode_accuracies(
    model,
    clf: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    mapping: np.ndarray,
    modes: np.ndarray,
    zn: np.ndarray,
) -> dict[str, float]:
    """Reconstruction and cluster accuracy from decoded latents ``(zn, e_mode)`` of images ``x``."""
    z = torch.cat(
        [torch.from_numpy(zn).float(), torch.eye(model.n_clusters)[torch.from_numpy(modes)]], dim=1
    )
    y_hat = classify(clf, _generate(model, z))
    return {
        "reconstruction_accuracy": round(float((y_hat == y).mean()), 4),
        "cluster_accuracy": round(float((mapping[modes] == y).mean()), 4),
        "n_images": len(y),
    }


# ----------------------------------------------------------------------------- figures
def figures(model, out: Path, *, seed: int, stem: str = "paper_mnist") -> list[str]:
    """Samples per mode (rows = zc) and interpolations between modes, by ``scgan_cluster.pl``,
    into ``<stem>_samples_per_cluster.png`` and ``<stem>_interpolation.png``."""
    import matplotlib as mpl

    mpl.use("Agg")
    k = model.n_clusters
    paths = [out / f"{stem}_samples_per_cluster.png", out / f"{stem}_interpolation.png"]
    scg.pl.cluster_samples(model, n_samples=10, random_state=seed, save=paths[0], show=False)
    scg.pl.interpolation(
        model,
        pairs=[(i, (i + 1) % k) for i in range(k)],
        n_steps=10,
        random_state=seed,
        save=paths[1],
        show=False,
    )
    for p in paths:
        print(f"wrote {p}")
    return [str(p.relative_to(out)) for p in paths]


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", action="store_true", help="100,000 iterations, 5,000 bp steps")
    parser.add_argument("--max-iter", type=int, default=None)
    parser.add_argument("--ks", default="7,9,10,11,13")
    parser.add_argument("--bp-steps", type=int, default=None)
    parser.add_argument("--bp-points", type=int, default=None)
    parser.add_argument("--per-mode", type=int, default=1000)
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--subsample", type=int, default=None, help="use n random images (tests)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--device", default="cpu", help="train and decode here (cpu, cuda); the classifier: CPU"
    )
    parser.add_argument(
        "--merge", action="store_true", help="keep other K's rows of an existing results file"
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="keep each K's training state here (the K = 10 file is paper_table1.py's of the "
        "same folder, dataset and budget with --runs 1); a rerun continues from it",
    )
    parser.add_argument(
        "--tag", default=None, help="write results/paper_mnist_<tag>.* instead of paper_mnist.*"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "paper_mnist" if args.tag is None else f"paper_mnist_{args.tag}"
    scg.settings.progress_bar = False
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    max_iter = args.max_iter or (100_000 if args.paper else 100)
    bp_steps = args.bp_steps or (5000 if args.paper else 100)
    bp_points = args.bp_points if args.bp_points is not None else (None if args.paper else 100)
    given, rest = [], list(argv if argv is not None else sys.argv[1:])
    while rest:  # the checkpoint folder as the docstring names it, not this machine's path
        a = rest.pop(0)
        if a == "--checkpoint-dir":
            rest.pop(0)
        if a.startswith("--checkpoint-dir"):
            a = "--checkpoint-dir=checkpoints"
        given.append(a)
    command = "python benchmarks/paper_mnist.py " + shlex.join(given)
    data = load("mnist", args.data_dir)
    if args.subsample is not None and args.subsample < len(data.x):
        keep = np.sort(np.random.RandomState(0).choice(len(data.x), args.subsample, replace=False))
        data.x, data.y = data.x[keep], data.y[keep]
    split = paper_split(len(data.x), seed=0)
    x_tr, x_te = data.x[split["train"]], data.x[split["test"]]
    y_tr, y_te = data.y[split["train"]], data.y[split["test"]]
    label = (
        "the paper's protocol"
        if max_iter == 100_000
        else f"CPU budget, NOT the paper's 100,000 iterations: {max_iter} generator iterations"
    )
    print(f"MNIST test set, split {[len(v) for v in split.values()]}; {label}")
    result: dict[str, Any] = {
        "data": data.description,
        "split_sizes": {k: len(v) for k, v in split.items()},
        "max_iter": max_iter,
        "budget_label": label,
        "device": args.device,
        "machine": machine(),
        "command": command,
    }
    # --- Table 3
    start = time.perf_counter()
    table3, models = [], {}
    for k in [int(v) for v in args.ks.split(",")]:
        data.n_clusters = k
        checkpoint = None
        if args.checkpoint_dir is not None:
            # K = 10 is the dataset's own K: the file paper_table1.py writes for its single run
            name = data.name if k == 10 else f"{data.name}_k{k}"
            checkpoint = clustergan_checkpoint(args.checkpoint_dir, name, len(x_tr), max_iter, 0, 0)
        model = fit_clustergan(
            data, x_tr, max_iter=max_iter, seed=0, device=args.device, checkpoint=checkpoint
        )
        m = score(y_te, model.predict(x_te))
        table3.append(
            {
                "K": k,
                **m,
                "paper_acc": PAPER_TABLE3.get(k),
                "train_seconds": round(model.train_seconds_, 1),
            }
        )
        models[k] = model
        print(
            f"  K={k}: test purity {m['purity']:.3f} acc {m['acc']:.3f} nmi {m['nmi']:.3f} ({model.train_seconds_:.0f} s)"
        )
    result["table3"] = table3
    # --- Section 5, on the K = 10 model
    model = models.get(10)
    if model is not None:
        t0 = time.perf_counter()
        clf = train_classifier(x_tr, y_tr, epochs=args.classifier_epochs)
        clf_acc = float((classify(clf, x_te) == y_te).mean())
        clf_seconds = time.perf_counter() - t0
        mode_acc, mapping, counts = mode_accuracy(model, clf, per_mode=args.per_mode, seed=1)
        pos = np.arange(len(x_te))
        if bp_points is not None and bp_points < len(pos):
            pos = np.sort(np.random.RandomState(0).choice(len(pos), bp_points, replace=False))
        t0 = time.perf_counter()
        bp = backprop_decode(
            model.generator,
            torch.from_numpy(x_te[pos]).to(model.device),
            10,
            n_latent=model.n_latent,
            sigma=model.sigma,
            n_steps=bp_steps,
            noise_generator=torch.Generator(device=model.device).manual_seed(2),
        )
        bp_seconds = time.perf_counter() - t0
        via_bp = decode_accuracies(
            model, clf, x_te[pos], y_te[pos], mapping, bp.k.cpu().numpy(), bp.zn.cpu().numpy()
        )
        full = model.get_latent_representation(x_te, representation="full")
        via_enc = decode_accuracies(
            model,
            clf,
            x_te,
            y_te,
            mapping,
            full[:, model.n_latent :].argmax(1),
            full[:, : model.n_latent],
        )
        result["section5"] = {
            "classifier": {
                "test_accuracy": round(clf_acc, 4),
                "epochs": args.classifier_epochs,
                "trained_on": f"{len(x_tr)} labelled train-part images",
                "seconds": round(clf_seconds, 1),
                "paper": PAPER_CLASSIFIER_ACCURACY,
            },
            "mode_accuracy": round(mode_acc, 4),
            "samples_per_mode": args.per_mode,
            "mode_to_digit": mapping.tolist(),
            "distinct_digits_of_modes": len(set(mapping.tolist())),
            "mode_votes": counts.tolist(),
            "algorithm1": {**via_bp, "bp_steps": bp_steps, "seconds": round(bp_seconds, 1)},
            "encoder": via_enc,
            "paper": PAPER_SECTION5,
        }
        print(
            f"  classifier test acc {clf_acc:.3f}; mode acc {mode_acc:.3f}; "
            f"Algorithm 1: {via_bp}; encoder: {via_enc}"
        )
        result["figures"] = figures(model, args.out, seed=3, stem=stem)
    result["total_seconds"] = round(time.perf_counter() - start, 1)
    path = args.out / f"{stem}.json"
    if args.merge and path.exists():
        result = _merge(json.loads(path.read_text()), result)
    write_json(path, result)
    (args.out / f"{stem}.md").write_text(markdown(result) + "\n")
    print(f"wrote {args.out / f'{stem}.md'}")
    return result


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` plus the Table 3 rows (and Section 5 / figures) of ``old`` that ``new`` lacks."""
    if old["split_sizes"] != new["split_sizes"] or old["max_iter"] != new["max_iter"]:
        raise ValueError("cannot merge results of different splits or budgets.")
    ks = {t["K"] for t in new["table3"]}
    merged = {**old, **new}
    merged["table3"] = sorted(
        [t for t in old["table3"] if t["K"] not in ks] + new["table3"], key=lambda t: t["K"]
    )
    commands = old.get("commands", [old["command"]]) + [new["command"]]
    merged.update(
        commands=commands,
        command=" ; ".join(commands),
        total_seconds=round(old["total_seconds"] + new["total_seconds"], 1),
    )
    return merged


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# MNIST: Table 3 and Section 2.6 of the ClusterGAN paper (`benchmarks/paper_mnist.py`)",
        "",
        f"Data: {r['data']}; split train / val / test = {r['split_sizes']['train']} / "
        f"{r['split_sizes']['val']} / {r['split_sizes']['test']} (seed 0). Budget: {r['budget_label']}. "
        f"Machine: {hardware(r['machine'], r.get('device', 'cpu'))}, torch {r['machine']['torch']}. Command: `{r['command']}`.",
        "",
        "## Table 3: robustness to K (test part; the paper's ACC is purity)",
        "",
        "| K | purity | ACC (Hungarian) | NMI | ARI | paper ACC (purity) | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in r["table3"]:
        paper = "-" if t["paper_acc"] is None else f"{t['paper_acc']:.2f}"
        lines.append(
            f"| {t['K']} | {t['purity']:.2f} | {t['acc']:.2f} | {t['nmi']:.2f} | {t['ari']:.2f} | {paper} | {t['train_seconds']:.0f} |"
        )
    s5 = r.get("section5")
    if s5:
        a1, enc, c = s5["algorithm1"], s5["encoder"], s5["classifier"]
        lines += [
            "",
            "## Section 2.6: mode, reconstruction and cluster accuracy (K = 10 model)",
            "",
            f"Classifier: {c['trained_on']}, {c['epochs']} epochs, test-part accuracy "
            f"{c['test_accuracy']:.3f} (the paper's: {c['paper']}).",
            "",
            "| metric | ours, Algorithm 1 decoding | ours, encoder decoding | paper |",
            "|---|---|---|---|",
            f"| mode accuracy ({s5['samples_per_mode']} samples per mode) | {s5['mode_accuracy']:.3f} | (same) | {s5['paper']['mode_accuracy']} |",
            f"| reconstruction accuracy | {a1['reconstruction_accuracy']:.3f} ({a1['n_images']} images, {a1['bp_steps']} Adam steps) | {enc['reconstruction_accuracy']:.3f} ({enc['n_images']} images) | {s5['paper']['reconstruction_accuracy']} |",
            f"| cluster accuracy | {a1['cluster_accuracy']:.3f} | {enc['cluster_accuracy']:.3f} | {s5['paper']['cluster_accuracy']} |",
            "",
            f"Mode -> digit (majority vote of the classifier): {s5['mode_to_digit']} "
            f"({s5['distinct_digits_of_modes']} distinct digits; mode accuracy alone does not "
            "penalise two modes that make the same digit).",
        ]
    if r.get("figures"):
        lines += ["", "## Figures", ""] + [f"![{p}]({p})" for p in r["figures"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
