"""The round schedule shared by SDTT and DCD (docs/distillation.md#rounds): round r (0-based) distils a teacher
that samples with teacher_steps / 2^r steps into a student that samples with half as many; at the end of each
round the student's weights become the teacher (SDTT: `_student_to_teacher`, arXiv 2410.21035 §3.2; Duo's
`update_teacher_every`, arXiv 2506.10892 §4), so after R rounds the student samples with teacher_steps / 2^R."""

from __future__ import annotations

from dataclasses import dataclass

from dlm.registry import ConfigError


@dataclass(frozen=True)
class Rounds:
    teacher_steps: int  # sampling steps of the starting teacher
    rounds: int
    steps_per_round: int  # optimizer steps per round

    def check(self) -> None:
        for key in ("teacher_steps", "rounds", "steps_per_round"):
            if getattr(self, key) < 1:
                raise ConfigError(f"distill {key}={getattr(self, key)} must be at least 1")
        if self.teacher_steps % 2 ** self.rounds:
            raise ConfigError(f"distill teacher_steps={self.teacher_steps} must be divisible by 2^rounds = "
                              f"{2 ** self.rounds}: every round halves the sampling steps")

    @property
    def total_steps(self) -> int:
        return self.rounds * self.steps_per_round

    def round_of(self, step: int) -> int:
        """The round the optimizer step `step` (0-based) belongs to."""
        return step // self.steps_per_round

    def student_steps(self, round_index: int) -> int:
        """Sampling steps of round round_index's student."""
        return self.teacher_steps // 2 ** (round_index + 1)

    def ends_round(self, done: int) -> bool:
        """Whether `done` completed optimizer steps close a round."""
        return done % self.steps_per_round == 0
