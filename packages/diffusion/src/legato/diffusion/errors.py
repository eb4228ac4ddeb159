"""The exception types of legato.diffusion."""


class DiffusionError(ValueError):
    """Bad input to a denoiser, scheduler or the sampling loop.

    Messages name the offending value, the rule it breaks and the fix. A ``ValueError`` subclass, so callers
    that catch bad-value errors keep working.
    """


class SamplingCancelled(RuntimeError):
    """A step callback returned ``False``: sampling stopped before the last step."""

    def __init__(self, step: int, total: int) -> None:
        super().__init__(f"sampling cancelled by the step callback at step {step} of {total}")
        self.step, self.total = step, total
