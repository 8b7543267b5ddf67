"""Tiny block-diffusion models for the block tests."""

import torch

import dlm

TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.max_len=32", "data.seq_len=16"]


def tiny_block_model(block_size: int, *extra: str, vocab_size: int = 9, seed: int = 0,
                     dtype: torch.dtype = torch.float64) -> dlm.DiffusionLM:
    """A freshly initialized tiny block-diffusion model (seq_len 16) in `dtype`, eval mode."""
    torch.manual_seed(seed)
    overrides = TINY + ["objective.name=block_diffusion", f"objective.block_size={block_size}", *extra]
    model = dlm.DiffusionLM.from_config(dlm.load_config(None, overrides), vocab_size=vocab_size)
    return model.to(dtype).eval()


def tokens(batch: int, length: int = 16, vocab: int = 9, seed: int = 3) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def confident_block_model(block_size: int, *extra: str) -> dlm.DiffusionLM:
    """A tiny block model whose output layer is scaled up (x7), so that its confidences spread over (0, 1) instead
    of sitting near 1 / vocab: adaptive decoding rules then commit different numbers of tokens per step and row."""
    model = tiny_block_model(block_size, *extra)
    with torch.no_grad():
        model.backbone.head.weight.mul_(7.0)
    return model


def recorded_widths(model: dlm.DiffusionLM) -> list[int]:
    """Patch model.backbone.forward so that every call appends its number of input tokens to the returned list."""
    widths: list[int] = []
    forward = model.backbone.forward

    def counting(tokens, *args, **kwargs):
        widths.append(tokens.shape[1])
        return forward(tokens, *args, **kwargs)

    model.backbone.forward = counting
    return widths


def with_random_conditioning(model: dlm.DiffusionLM, seed: int = 0) -> dlm.DiffusionLM:
    """The model with its zero-initialized parameters (adaLN's: a fresh time-conditioned model ignores t) drawn at
    random, so that t changes the outputs; in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return model


def assert_same_loss_and_gradients(block: dlm.DiffusionLM, masked: dlm.DiffusionLM, loss_of) -> None:
    """loss_of(model) -> LossOutput, in training mode: equal losses and gradients of the two models."""
    losses, grads = [], []
    for model in (block, masked):
        model.train()
        out = loss_of(model)
        out.loss.backward()
        losses.append(out.loss.detach())
        grads.append([p.grad for p in model.parameters()])
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-6)
    for g_block, g_masked in zip(*grads):
        torch.testing.assert_close(g_block, g_masked, rtol=1e-4, atol=1e-6)
