"""Benchmark `dlm data prepare` against nanoGPT's data/openwebtext/prepare.py recipe, and the prepared loader's memory.

Writes --out-json (default runs/bench/bench_prepare.json; the published copy is benchmarks/bench_prepare.json).
In one run, on the same synthesized corpus (WikiText-103 rows from the local
data dir, grouped into documents of 20 rows and repeated up to --size-mb of text, as JSONL in --workdir, deleted
after), each pipeline runs in its own process with its own fresh `datasets` cache:

  ours           dlm.data.prepare(..., num_proc=N): map(batched=True, with_rank=True) workers write uint16 shards
  nanogpt        a local re-implementation of nanoGPT's recipe: load_dataset, train_test_split(0.0005, seed 2357),
                 map(encode_ordinary + EOT, num_proc=N) into an Arrow column, then 1024 contiguous shards
                 concatenated into one uint16 np.memmap in the parent process (tiktoken GPT-2)
  *_hf           the same two with the Hugging Face fast GPT-2 tokenizer instead of tiktoken (pipeline only)

Throughput is text MB (UTF-8 bytes of the documents) per wall second; peak RSS is sampled every 0.1 s over the
process tree (sum, so forked workers count). --small-rounds / --large-rounds R run the pipelines in turn R times
(ours, nanogpt, ours, ...): the machine is shared, so a load change hits both alike; each pipeline reports its
median run and the ratio is the median of the per-round ratios. Then the training loader (TokenBatches over
PreparedRows, batch 64, L=1024, --loader-batches batches, sha256 check at open) runs in a fresh process on each
prepared corpus (ours, small and large) and reports its peak RSS: constant memory means the 100 MB and 1 GB
corpora give the same peak. --loader-replicate K also builds a K-times larger prepared corpus by copying the
large one's shards (no re-tokenizing) for that test. The JSON is rewritten after each round ("complete": false).

Needs tiktoken (dlm[prepare]) and psutil.

    nice -n 10 python -m scripts.bench.prepare --size-mb 1000 --num-proc 2 --small-pipelines ours,nanogpt \
        --small-rounds 3 --large-rounds 3 --workdir runs/bench_prepare     # ~1 h on 2 loaded cores
    python -m scripts.bench.prepare --smoke --out-json /tmp/smoke.json   # a minute: tiny sizes
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SHARDS_NANOGPT = 1024  # nanoGPT writes its memmap in 1024 contiguous shards


def synthesize(path: Path, size_mb: float) -> dict:
    """JSONL of documents (20 WikiText-103 rows each) repeated until `size_mb` MB of text. Returns sizes."""
    from dlm.data.paths import data_dir

    rows = []
    for split in ("valid", "test"):
        raw = gzip.decompress((data_dir() / "wikitext-103" / f"wikitext-103-v1.{split}.hfrows.csv.gz").read_bytes())
        rows += [r[0] for r in csv.reader(io.StringIO(raw.decode("utf-8"), newline=""))][1:]
    rows = [r for r in rows if r.strip()]
    docs = ["".join(rows[i : i + 20]) for i in range(0, len(rows), 20)]
    lines = [json.dumps({"text": d}) + "\n" for d in docs]
    text_bytes = sum(len(d.encode()) for d in docs)
    target, written, repeats = size_mb * 1e6, 0, 0
    with open(path, "w") as handle:
        while written < target:
            handle.writelines(lines)
            written, repeats = written + text_bytes, repeats + 1
    return {"text_bytes": written, "file_bytes": path.stat().st_size, "documents": len(docs) * repeats}


def run_ours(source: str, out: str, num_proc: int, encoder: str) -> None:
    from dlm.data.prepare import prepare

    prepare(source, "gpt2", out, num_proc=num_proc, encoder=encoder)


def run_nanogpt(source: str, out: str, num_proc: int, encoder: str) -> None:
    """nanoGPT's recipe (our re-implementation): tokenize to an Arrow column, then one memmap per split."""
    import numpy as np
    from datasets import load_dataset
    from tqdm import tqdm

    encode, eot = _encoder(encoder)
    dataset = load_dataset("json", data_files=source, split="train")
    split_dataset = dataset.train_test_split(test_size=0.0005, seed=2357, shuffle=True)
    split_dataset["val"] = split_dataset.pop("test")

    def process(example):
        ids = encode(example["text"])
        ids.append(eot)
        return {"ids": ids, "len": len(ids)}

    tokenized = split_dataset.map(process, remove_columns=["text"], desc="tokenizing the splits", num_proc=num_proc)
    os.makedirs(out, exist_ok=True)
    for split, dset in tokenized.items():
        arr_len = np.sum(dset["len"], dtype=np.uint64)
        arr = np.memmap(os.path.join(out, f"{split}.bin"), dtype=np.uint16, mode="w+", shape=(arr_len,))
        idx, shards = 0, min(SHARDS_NANOGPT, len(dset))  # fewer only for the tiny --smoke corpus
        for batch_idx in tqdm(range(shards), desc=f"writing {split}.bin"):
            batch = dset.shard(num_shards=shards, index=batch_idx, contiguous=True).with_format("numpy")
            arr_batch = np.concatenate(batch["ids"])
            arr[idx : idx + len(arr_batch)] = arr_batch
            idx += len(arr_batch)
        arr.flush()


def _encoder(name: str):
    """(encode(text) -> list of ids, EOT id) for 'tiktoken' or 'hf' (GPT-2, text as ordinary text)."""
    if name == "tiktoken":
        from dlm.data.tokenizer import gpt2_tiktoken

        enc = gpt2_tiktoken()
        return enc.encode_ordinary, enc.eot_token
    from dlm.data.tokenizer import build_tokenizer

    tok = build_tokenizer("gpt2")
    return lambda text: tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"], tok.eos_token_id


def run_loader(folder: str, batches: int) -> None:
    """Iterate the training loader; print its peak RSS (ru_maxrss) as JSON on the last line."""
    import resource

    import torch

    from dlm.data import DataConfig
    from dlm.data.splits import token_sources, tokenizer_from_config

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = DataConfig(source=f"prepared:{folder}", tokenizer="gpt2", seq_len=1024, val_fraction=0.001)
    train, _ = token_sources(cfg, tokenizer_from_config(cfg))
    from dlm.data import TokenBatches

    start, total, split = time.perf_counter(), 0, {"RssAnon": 0.0, "RssFile": 0.0}
    for index, batch in zip(range(batches), TokenBatches(train, batch_size=64, seed=0)):
        total += int(batch["input_ids"].sum() % 7)  # touch every token
        if index % 20 == 0 or index == batches - 1:
            split = {key: max(split[key], value) for key, value in _rss_split().items()}
    torch.set_num_threads(1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": len(train), "batches": batches, "seconds": time.perf_counter() - start,
                      "rss_before_mb": before / 1024, "peak_rss_mb": peak / 1024,
                      "peak_rss_anon_mb": split["RssAnon"], "peak_rss_file_mb": split["RssFile"]}))


def _rss_split() -> dict[str, float]:
    """The process's RSS split into anonymous memory (its own) and file-backed pages (mapped files: libraries, and
    any shard pages a memmap reader would map; the loader's positional reads map none), in MB."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith(("RssAnon", "RssFile")))
    return {key: int(value.split()[0]) / 1024 for key, value in fields.items()}


def replicate(folder: Path, out: Path, times: int) -> dict:
    """A prepared corpus holding `folder`'s train split `times` over (real copies of the shards, offsets shifted):
    a corpus `times` larger for the loader's memory test, without tokenizing it again."""
    import numpy as np

    from dlm.data.prepare import MANIFEST, TOKENIZER_DIR, file_entry, offsets_name, shard_name

    manifest = json.loads((folder / MANIFEST).read_text())
    train = manifest["splits"]["train"]
    out.mkdir(parents=True)
    shutil.copytree(folder / TOKENIZER_DIR, out / TOKENIZER_DIR)
    offsets = np.fromfile(folder / offsets_name("train"), dtype=np.int64)
    shards, index = [], 0
    for _ in range(times):
        for shard in train["shards"]:
            shutil.copyfile(folder / shard["file"], out / shard_name("train", index))
            shards.append({**shard, "file": shard_name("train", index)})
            index += 1
    ends = np.concatenate([[0], *(offsets[1:] + k * offsets[-1] for k in range(times))])
    (out / offsets_name("train")).write_bytes(ends.astype(np.int64).tobytes())
    manifest["splits"] = {"train": {"tokens": int(ends[-1]), "documents": len(ends) - 1, "shards": shards,
                                    "offsets": file_entry(out / offsets_name("train"))}}
    (out / MANIFEST).write_text(json.dumps(manifest))
    return {"tokens": int(ends[-1]), "replicated": times}


def measure(args: list[str], env: dict) -> dict:
    """Run this script with `args` in a child process; wall seconds, peak tree RSS (MB) and its last stdout line."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], env=env, stdout=subprocess.PIPE, text=True)
    peak = {"sum": 0.0, "max": 0.0}
    parent = psutil.Process(proc.pid)

    def sample():
        while proc.poll() is None:
            try:
                rss = [p.memory_info().rss for p in [parent, *parent.children(recursive=True)]]
            except psutil.Error:
                continue
            peak["sum"], peak["max"] = max(peak["sum"], sum(rss) / 2**20), max(peak["max"], max(rss) / 2**20)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:2]} failed with status {proc.returncode}")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return {"seconds": time.perf_counter() - start, "peak_rss_tree_mb": peak["sum"], "peak_rss_process_mb":
            peak["max"], **(json.loads(lines[-1]) if lines else {})}


def compare(corpus: Path, sizes: dict, pipelines: list[str], work: Path, num_proc: int, rounds: int,
            on_round=lambda results: None) -> dict:
    """The pipelines in turn, `rounds` times over (ours, nanogpt, ours, nanogpt, ...) so that a change in the shared
    machine's load hits both alike; each pipeline's median run is reported and the ratio is taken per round.
    The last output of each stays in work/<name> (ours is reused by the loader runs)."""
    runs: dict[str, list[dict]] = {name: [] for name in pipelines}
    for round_index in range(rounds):
        for name in pipelines:
            kind, _, variant = name.partition("_")
            env = {**os.environ, "HF_DATASETS_CACHE": str(work / f"cache-{name}"), "TOKENIZERS_PARALLELISM": "false"}
            out = work / name
            shutil.rmtree(out, ignore_errors=True)
            print(f"[bench_prepare] {name} on {sizes['text_bytes'] / 1e6:.0f} MB, round {round_index + 1}/{rounds}"
                  " ...", file=sys.stderr, flush=True)
            run = measure(["--run", kind, "--input", str(corpus), "--output", str(out), "--num-proc",
                           str(num_proc), "--encoder", "hf" if variant == "hf" else "tiktoken"], env)
            run["mb_per_s"] = sizes["text_bytes"] / 1e6 / run["seconds"]
            run["output_bytes"] = sum(p.stat().st_size for p in out.glob("*.bin"))
            runs[name].append(run)
            shutil.rmtree(work / f"cache-{name}", ignore_errors=True)
        on_round(summarize(runs))
    return summarize(runs)


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Each pipeline's median run (by seconds) and the ours / nanogpt throughput ratio, per round and its median."""
    results: dict = {}
    for name, done in runs.items():
        median = sorted(done, key=lambda run: run["seconds"])[(len(done) - 1) // 2]
        results[name] = {**median, "seconds_per_round": [run["seconds"] for run in done]}
    for base in ("ours", "ours_hf"):
        other = base.replace("ours", "nanogpt")
        if base in runs and other in runs:
            per_round = [b["mb_per_s"] / o["mb_per_s"] for b, o in zip(runs[base], runs[other])]
            results[f"{base}_vs_{other}_throughput_ratio_per_round"] = per_round
            results[f"{base}_vs_{other}_throughput_ratio"] = sorted(per_round)[(len(per_round) - 1) // 2]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=1000.0, help="the large corpus (MB of text)")
    parser.add_argument("--small-mb", type=float, default=100.0, help="the small corpus (MB of text)")
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--loader-batches", type=int, default=2000)
    parser.add_argument("--loader-replicate", type=int, default=1,
                        help="also test the loader on the large prepared corpus copied this many times over")
    parser.add_argument("--small-pipelines", default="ours,nanogpt,ours_hf,nanogpt_hf")
    parser.add_argument("--large-pipelines", default="ours,nanogpt")
    parser.add_argument("--small-rounds", type=int, default=1, help="alternating runs of the small pipelines")
    parser.add_argument("--large-rounds", type=int, default=1, help="alternating runs of the large pipelines")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--out-json", default="runs/bench/bench_prepare.json")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (2 and 4 MB), 50 loader batches")
    parser.add_argument("--run", choices=["ours", "nanogpt", "loader"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--encoder", default="tiktoken", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run == "loader":
        return run_loader(args.input, args.loader_batches)
    if args.run:
        runner = run_ours if args.run == "ours" else run_nanogpt
        return runner(args.input, args.output, args.num_proc, args.encoder)
    if args.smoke:
        args.size_mb, args.small_mb, args.loader_batches, args.loader_replicate = 4.0, 2.0, 50, 3
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_prepare-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"num_proc": args.num_proc, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
              "command": " ".join(sys.argv[1:]), "loader": {}}
    try:
        for label, size, pipelines, rounds in (("small", args.small_mb, args.small_pipelines, args.small_rounds),
                                               ("large", args.size_mb, args.large_pipelines, args.large_rounds)):
            corpus = work / f"{label}.jsonl"
            sizes = synthesize(corpus, size)
            def keep(results, label=label, sizes=sizes):  # a long run keeps what it has measured, round by round
                write_report({**report, label: {"corpus": sizes, **results}}, args.out_json, complete=False)

            report[label] = {"corpus": sizes, **compare(corpus, sizes, pipelines.split(","), work / label,
                                                          args.num_proc, rounds, keep)}
            corpus.unlink()
        corpora = {}  # the loader on both prepared corpora (small first: the ratio is large / small)
        for label in ("small", "large"):
            if (work / label / "ours").is_dir():
                corpora[f"{report[label]['corpus']['text_bytes'] / 1e6:.0f}MB"] = (work / label / "ours", {})
        ours, text_mb = work / "large" / "ours", report["large"]["corpus"]["text_bytes"] / 1e6
        if args.loader_replicate > 1:
            big = work / "replicated"
            corpora[f"{text_mb * args.loader_replicate:.0f}MB"] = (big, replicate(ours, big, args.loader_replicate))
        for name, (folder, note) in corpora.items():
            report["loader"][name] = {**note, **measure(["--run", "loader", "--input", str(folder), "--loader-batches",
                                                         str(args.loader_batches)], dict(os.environ))}
        runs = list(report["loader"].values())
        for key in ("peak_rss_mb", "peak_rss_anon_mb"):
            report["loader"][f"{key.removesuffix('_mb')}_ratio_large_vs_small"] = runs[-1][key] / runs[0][key]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(report, args.out_json, complete=True)
    print(json.dumps(report, indent=2))


def write_report(report: dict, path: str, complete: bool) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({**report, "complete": complete}, indent=2) + "\n")


if __name__ == "__main__":
    main()
