# Optional memory probe for the benchmark (main.py --mem-stats, unix port).
# When enabled, every relay frame starts from a collected heap and the
# deepest point of handling it (a message encrypted, about to be sent)
# records gc.mem_alloc(), so `peak` is the most memory one frame needs.
import gc

enabled = False
peak = 0


def frame_start():
    if enabled:
        gc.collect()


def sample():
    global peak  # noqa: PLW0603  (the probe's one figure, read by hw_sim's "mem")
    if enabled:
        peak = max(peak, gc.mem_alloc())
