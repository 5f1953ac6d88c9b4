"""The peer's job for the drain and pickup benchmarks: nothing, as scenefarm's instant renderer."""


def noop():
    return None
