"""The clipped-schedule search (objectives/clip_search.py): the reference's 36 candidates, and the least-variance
window picked from a synthetic table and from a model's per-block estimates."""

import json
from pathlib import Path

import torch

import dlm
from dlm.objectives.clip_search import (
    ClipSearch,
    candidate_windows,
    least_variance_window,
    variance_scores,
    window_statistics,
)
from dlm.train.checkpoint import checkpoint_root, latest_checkpoint, load_trainer_state
from dlm.train.loop import train
from tests.block.helpers import TINY, tiny_block_model, tokens


def test_the_paper_widths_give_36_windows_ending_at_1_for_the_widest():
    windows = candidate_windows()
    assert len(windows) == 36 and windows[0] == (0.0, 1.0)
    assert (0.5, 1.0) in windows and (0.0, 0.5) in windows and (0.1, 1.0) in windows
    assert all(0 <= beta < omega <= 1 for beta, omega in windows)


def test_the_least_variance_window_wins_on_a_synthetic_table():
    gen = torch.Generator().manual_seed(0)
    spreads = {(0.0, 1.0): 3.0, (0.3, 0.8): 0.5, (0.2, 0.9): 1.0}
    table = {w: [s * torch.randn(8, 4, generator=gen) + 10 * i for i in range(5)] for w, s in spreads.items()}
    assert least_variance_window(table) == (0.3, 0.8)
    table[(0.2, 0.9)] = [0.1 * batch for batch in table[(0.2, 0.9)]]  # now the quietest
    assert least_variance_window(table) == (0.2, 0.9)


def test_per_block_estimates_average_each_blocks_loss():
    model = tiny_block_model(4)
    x0 = tokens(3)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        blocks = model.objective.block_estimates(model.logits, x0, (0.0, 1.0), generator=generator)
        loss = model.loss(x0, generator=torch.Generator().manual_seed(0)).loss
    assert blocks.shape == (3, 4)
    torch.testing.assert_close(blocks.mean().float(), loss, rtol=1e-6, atol=1e-6)


def test_training_searches_the_window_at_validation_and_checkpoints_it(tmp_path, capsys):
    """objective.clip_search: each validation picks a candidate window for training; the trainer state stores it
    and a rebuilt objective takes it back (what --resume does)."""
    cfg = dlm.load_config(None, TINY + [
        "objective.name=block_diffusion", "objective.block_size=4", "objective.clip_search=true", "train.steps=2",
        "train.eval_every=1", "train.save_every=2", "train.batch_size=2", "train.eval_batches=1",
        "train.progress=false", f"train.out_dir={tmp_path / 'run'}"])
    summary = train(cfg)
    lines = [line for line in capsys.readouterr().out.splitlines() if "clip search" in line]
    state = load_trainer_state(latest_checkpoint(checkpoint_root(tmp_path / "run")))
    window = tuple(state["objective"]["clip"])
    assert len(lines) == 2 and lines[-1].endswith(f"training window [{window[0]:g}, {window[1]:g}]")
    assert window in candidate_windows()
    fresh = dlm.DiffusionLM.from_config(cfg, vocab_size=9).objective
    fresh.load_state_dict(state["objective"])
    assert fresh.clip == window
    assert dlm.DiffusionLM.from_pretrained(summary["final_dir"]).objective.clip == window  # the exported model


class SpreadObjective:
    """block_estimates with a known spread per window: the narrower the window, the quieter (synthetic)."""

    clip = (0.0, 1.0)

    def block_estimates(self, logits_fn, x0, window, *, generator=None):
        width = window[1] - window[0]
        return width * torch.randn(x0.shape[0], 4, generator=generator) + 5


def test_a_search_sets_the_objectives_window_to_the_least_variance_candidate():
    objective = SpreadObjective()
    search = ClipSearch(objective)
    for _ in range(3):
        search.add(None, torch.zeros(16, 8), torch.Generator().manual_seed(0))
    line = search.finish()
    assert round(objective.clip[1] - objective.clip[0], 9) == 0.5  # a width-0.5 window: the quietest
    assert line.endswith(f"[{objective.clip[0]:g}, {objective.clip[1]:g}]")


def two_rank_table():
    """Per rank, 3 validation batches of (4, 2) estimates for two windows: on each rank alone the window (0.3, 0.8)
    is the quieter one, but its ranks sit at different levels, so pooled over ranks (0, 1) is."""
    gen = torch.Generator().manual_seed(0)
    ranks = []
    for level in (0.0, 10.0):
        ranks.append({(0.0, 1.0): [5 + 2 * torch.randn(4, 2, generator=gen, dtype=torch.float64) for _ in range(3)],
                      (0.3, 0.8): [level + 0.1 * torch.randn(4, 2, generator=gen, dtype=torch.float64)
                                   for _ in range(3)]})
    return ranks


def test_ranks_pool_their_estimates_per_batch_before_choosing():
    """finish(reduce=...) sums each rank's (count, sum, sum of squares): the same scores as torch.var over the
    gathered estimates of each batch, so every rank picks the window one process would pick from all of them."""
    ranks = two_rank_table()
    assert [least_variance_window(rank) for rank in ranks] == [(0.3, 0.8), (0.3, 0.8)]
    gathered = {w: [torch.cat([a, b]) for a, b in zip(ranks[0][w], ranks[1][w])] for w in ranks[0]}
    assert least_variance_window(gathered) == (0.0, 1.0)
    statistics = [window_statistics(rank) for rank in ranks]
    for me, other in ((0, 1), (1, 0)):  # a fake 2-rank all-reduce: add the other rank's statistics
        objective = SpreadObjective()
        search = ClipSearch(objective, windows=list(ranks[me]))
        search.estimates = ranks[me]
        search.finish(reduce=lambda values, other=other: values + statistics[other])
        assert objective.clip == (0.0, 1.0)
    expected = torch.tensor([sum(float(batch.var()) for batch in gathered[w]) for w in gathered], dtype=torch.float64)
    torch.testing.assert_close(variance_scores(statistics[0] + statistics[1]), expected, rtol=1e-12, atol=0)


def test_the_searched_window_is_exported_in_config_json_and_restored_by_from_pretrained(tmp_path):
    model = tiny_block_model(4, "objective.clip_search=true")
    search = ClipSearch(model.objective, windows=[(0.0, 1.0), (0.3, 0.8)])
    search.estimates = two_rank_table()[0]  # (0.3, 0.8) is the quieter window here
    search.finish()
    model.save_pretrained(str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["run"]["objective"]["clip"] == [0.3, 0.8]
    loaded = dlm.DiffusionLM.from_pretrained(str(tmp_path)).objective
    assert loaded.clip == (0.3, 0.8)
    x0 = tokens(2)
    with torch.enable_grad():  # training draws come from the restored window: the same loss as the searched model
        assert loaded.loss(model.logits, x0, generator=torch.Generator().manual_seed(0)).loss == \
            model.objective.loss(model.logits, x0, generator=torch.Generator().manual_seed(0)).loss


def _rank(rank: int, init_file: str, out_dir: str) -> None:
    """One of two gloo processes: its own estimates, the trainer's reduction (all_reduce_sum), its chosen window."""
    import torch.distributed as torch_dist

    from dlm.train.parallel import Dist, all_reduce_sum

    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        objective, dist = SpreadObjective(), Dist(rank=rank, world_size=2)
        search = ClipSearch(objective, windows=[(0.0, 1.0), (0.3, 0.8)])
        search.estimates = two_rank_table()[rank]
        search.finish(reduce=lambda values: all_reduce_sum(values, dist))
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(list(objective.clip)))
    finally:
        torch_dist.destroy_process_group()


def test_two_gloo_processes_pick_the_window_of_their_pooled_estimates(tmp_path):
    """Alone, each rank would pick (0.3, 0.8); the all-reduced statistics make both pick (0, 1)."""
    torch.multiprocessing.spawn(_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    assert [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)] == [[0.0, 1.0], [0.0, 1.0]]
