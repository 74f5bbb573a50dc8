"""A test clock for the simulators, and a sleep that moves it instead of waiting.

Simulators take an injectable clock and the HttpClient an injectable sleep: wired together,
rate windows and token lifetimes pass exactly as long as the code under test waits, at once.
"""

from __future__ import annotations


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:  # 22:13:20 UTC
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps(list):
    """Records every wait the client asks for and moves the simulator's clock instead."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def sleep(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.advance(seconds)
