"""A strategy that only reproduces its training shots: the memorisation trap the verdict metrics must expose.

Used by tests/test_verdicts.py through ``--plugin`` (run with ``--ema-beta 0``,
so that the generator evaluated is the one this strategy hooks).
"""

from __future__ import annotations

import torch

from tganbench import Strategy, hookimpl


class Memorise(Strategy):
    """Every latent draws one of the training shots, exactly; nothing trains."""

    name = "memorise"
    description = "G returns a training shot for every latent (tests: a generator that copies)"
    from_source = False
    adversarial = False

    def frozen(self, g, d):
        """Nothing of D trains (G's weights are never used: its output is replaced)."""
        return [d]

    def prepare(self, state) -> None:
        """Replace G's output by the shot its latent's first coordinate picks."""
        memory = state.images.float() / 127.5 - 1

        def copy_a_shot(module, inputs, output):
            index = (inputs[0][:, 0] * 1e4).long().abs() % len(memory)
            return memory[index].to(output.dtype).contiguous(memory_format=torch.contiguous_format)

        state.g.register_forward_hook(copy_a_shot)

    def step(self, state) -> dict[str, torch.Tensor]:
        """Nothing to learn."""
        return {"g_loss": torch.zeros((), device=state.images.device)}


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``memorise``."""
    register(Memorise)
