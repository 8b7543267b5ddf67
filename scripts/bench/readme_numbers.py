"""The README's headline numbers, regenerated from the published results in benchmarks/, each with the command that
produced it and the commit that published it (the last commit that changed its result file).

    python -m scripts.bench.readme_numbers          # prints one sentence per capability, as the README words it

tests/scripts/test_readme_numbers.py checks that the README says exactly these sentences, so a republished
benchmark that changes a number (or only its commit) fails until the README is updated.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from scripts.bench.harness import PUBLISHED, REPO

MINUS = "\u2212"  # the README's minus sign


def published_in(*files: str) -> str:
    """The short hash of the last commit that changed any of `files` (benchmarks/ names), or 'uncommitted'."""
    done = subprocess.run(["git", "log", "-1", "--format=%h", "--", *(str(PUBLISHED / f) for f in files)],
                          cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "uncommitted"


def _load(name: str) -> dict:
    return json.loads((PUBLISHED / name).read_text())


def _signed(value: float, digits: int = 1) -> str:
    return f"{value:+.{digits}f}".replace("-", MINUS).lstrip("+")


def quickstart() -> str:
    result = _load("quickstart.json")
    minutes, seconds = divmod(round(result["wall_s"]), 60)
    seeds = result["corpus_words_percent_per_seed"]
    load = sorted((result["loadavg_before"][0], result["loadavg_after"][0]))
    threads = f", OMP_NUM_THREADS={result['omp_num_threads']}" if result["omp_num_threads"] else ""
    return (f"{minutes} min {seconds} s end to end ({result['cpu_s']:.0f} CPU-seconds{threads}) on {result['cpus']} "
            f"cores at load {load[0]:.0f}–{load[1]:.0f}, validation bound {result['val_nll_per_token']:.2f} nats/token "
            f"(≈ {result['val_nll_per_char']:.2f} nats/char), and {result['corpus_words_percent_mean']:.1f} % of "
            f"the sampled words are words of the corpus (mean over {len(seeds)} sample seeds, "
            f"{min(seeds):.1f}–{max(seeds):.1f} %) (`python -m scripts.bench.quickstart --publish`, published in "
            f"{published_in('quickstart.json')})")


def samplers() -> str:
    rows = _load("bench_samplers.json")["suites"]["fs1_masked"]["samplers"]
    trap, tau = rows["theta_trapezoidal(theta=0.5)"], rows["tau_leaping"]
    return (f"θ-trapezoidal converges at order {trap['order']:.2f} and reaches total variation 1e-3 in "
            f"{trap['nfe_to_tv']['0.001']:.0f} denoiser calls against {tau['nfe_to_tv']['0.001']:.0f} for "
            f"τ-leaping (`python -m scripts.bench.samplers`, published in {published_in('bench_samplers.json')})")


def cache() -> str:
    (row,) = [r for r in _load("bench_cache.json")["rows"]
              if (r["length"], r["steps"], r["policy"]) == (512, 128, "dkv_decode")]
    return (f"block-wise `dkv_decode` is {row['speedup_b1']:.2f}× (batch 1) / {row['speedup_b8']:.2f}× (batch 8) "
            f"faster than no cache, with gen-PPL {_signed(100 * row['rel_gen_ppl'])} ± "
            f"{100 * row['rel_gen_ppl_se']:.1f} % and entropy {_signed(100 * row['rel_entropy'])} ± "
            f"{100 * row['rel_entropy_se']:.1f} % relative to it (`python -m scripts.bench.cache`, published in "
            f"{published_in('bench_cache.json')})")


def guidance() -> str:
    accuracy = {r["scale"]: r["accuracy"] for r in _load("demo_cfg.json")["results"] if r["top_p"] == 1.0}
    return (f"rises from {accuracy[0.0]:.2f} (w = 0) to {accuracy[1.0]:.2f} (w = 1) (`python -m examples.cfg_labels`, "
            f"published in {published_in('demo_cfg.json')})")


def dice() -> str:
    result = _load("demo_dice.json")
    lines = result["meta"]["lines"]
    exact = min(r["reconstruction_exact"] for r in result["results"] if r["method"] == "dice")
    return (f"bit-exact on {round(exact * lines)}/{lines} held-out speeches (`python -m examples.dice_text`, "
            f"published in {published_in('demo_dice.json')})")


def zero_shot() -> str:
    rows = {r["checkpoint"].split("/")[-2]: r for r in _load("zero_shot.json")["rows"] if r["dataset"] == "ptb"}
    diffusion = ", ".join(f"{rows[k]['ppl']:.2f} ± {rows[k]['ppl_se']:.2f} ({name})"
                          for k, name in (("mdlm", "MDLM"), ("udlm", "UDLM"), ("sedd", "SEDD")))
    return (f"PTB at {diffusion} and {rows['ar']['ppl']:.2f} (AR) (`bash scripts/experiments/zero_shot.sh "
            f"--publish`, published in {published_in('zero_shot.json')})")


def prepare() -> str:
    ratio = _load("bench_prepare.json")["large"]["ours_vs_nanogpt_throughput_ratio"]
    return (f"{ratio:.2f}× faster than nanoGPT's recipe (`python -m scripts.bench.prepare`, published in "
            f"{published_in('bench_prepare.json')})")


def reasoning() -> str:
    points = [p for p in _load("reasoning.json")["points"] if p["task"] == "sudoku4x4"]
    masked = sorted((p["tokens"], p["accuracy"], p["eval_n"]) for p in points if p["family"] == "mdlm")
    solved_from = min(t for t, accuracy, _ in masked if all(a == 1.0 for s, a, _ in masked if s >= t))
    late_ar = [p["accuracy"] for p in points if p["family"] == "ar" and p["tokens"] >= solved_from * 0.7]
    return (f"solves 100 % of the {masked[-1][2]} shipped 4×4 Sudoku puzzles from {solved_from / 1e6:.0f}M training "
            f"tokens on, where AR on the same backbone plateaus at {100 * min(late_ar):.0f}–{100 * max(late_ar):.0f} % "
            f"(`bash scripts/experiments/reasoning.sh --publish`, published in {published_in('reasoning.json')})")


def images() -> str:
    rows = {r["folder"]: r for r in _load("images_mnist.json")["rows"]}
    best, fd = rows["mnist_vq_mdlm_7500"], rows["mnist_vq_mdlm_7500_fd5000"]
    return (f"class accuracy {best['accuracy']:.3f} at CFG {best['best_cfg_scale']:.0f}, FD "
            f"{fd['fd_over_codec']:.2f}× the codec floor and image→caption accuracy "
            f"{best['image_to_caption_accuracy']:.3f} on MNIST (`bash scripts/experiments/images.sh --publish`, "
            f"published in {published_in('images_mnist.json')})")


def block() -> str:
    result = _load("bench_block.json")
    rows = {r["family"]: r for r in result["likelihood"]["rows"]}
    bound = {name: f"{rows[name]['nll']:.3f} ± {rows[name]['nll_se']:.3f}" for name in rows}
    gap = result["likelihood"]["gap_closed"]
    sampling = result["sampling"]
    at_2048 = {r["method"]: r["ratio_to_ar"] for r in sampling["rows"] if r["length"] == 2048}
    exponent = sampling["growth_exponent"]
    return (f"AR {rows['ar']['nll']:.3f} (exact), BD3LM L′=4 {bound['bd3lm_4']}, SEDD {bound['sedd']}, MDLM "
            f"{bound['mdlm']}, UDLM {bound['udlm']} nats/char: blocks of 4 close {100 * gap['fraction']:.0f} ± "
            f"{100 * gap['fraction_se']:.0f} % of the MDLM-to-AR gap (the papers: 40–44 % at convergence). Sampling "
            f"cost grows like AR's (exponent {exponent['bd3lm_4']:.2f} against {exponent['ar']:.2f}; MDLM "
            f"{exponent['mdlm']:.2f}): {at_2048['bd3lm_4']:.2f}× AR's time at L = 2048, MDLM "
            f"{at_2048['mdlm']:.0f}× (`python -m scripts.bench.block`, published in "
            f"{published_in('bench_block.json')})")


def decode() -> str:
    result = _load("bench_decode.json")
    task = {r["label"]: r for r in result["sections"]["task"]["rows"]}
    (fast,) = result["targets"]["task_threshold_2.5x_same_quality"]["settings_meeting"][:1]
    base = task[f"confidence@{task[fast]['steps']}"]
    cached = result["targets"]["text512_cache_6x"]["fastest_at_equal_quality"]
    gen_ppl = ("+" if cached["rel_gen_ppl"] >= 0 else "") + _signed(100 * cached["rel_gen_ppl"])
    return (f"`{fast.partition('@')[0]}` decodes Sudoku 4×4 in {task[fast]['nfe']:.1f} NFE instead of "
            f"{base['nfe']:.0f} at the same {100 * task[fast]['accuracy']:.1f} %, and with `--cache "
            f"{cached['label'].rpartition('+')[2]}` a text of L = 512 takes {cached['speedup_b8']:.1f}× less wall "
            f"time (batch 8; {cached['speedup_b1']:.1f}× at batch 1) at {gen_ppl} % "
            f"gen-PPL (`python -m scripts.bench.decode`, published in {published_in('bench_decode.json')})")


HEADLINES: dict[str, Callable[[], str]] = {
    "quickstart": quickstart, "samplers": samplers, "caches": cache, "guidance": guidance, "dice": dice,
    "zero-shot": zero_shot, "prepare": prepare, "reasoning": reasoning, "images": images, "block": block,
    "decode": decode}


def main() -> None:
    for name, headline in HEADLINES.items():
        print(f"{name}: {headline()}")


if __name__ == "__main__":
    main()
