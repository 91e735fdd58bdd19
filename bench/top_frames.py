"""Summarise py-spy's folded stacks (``py-spy record -f raw``): the share of samples in which each
function is on the stack (inclusive) and at its top (self), largest first.

    python top_frames.py profile.folded [--limit 40]
"""

from __future__ import annotations

import argparse
import collections
import re


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folded")
    parser.add_argument("--limit", type=int, default=40)
    args = parser.parse_args()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.folded) as lines:
        for line in lines:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            samples = int(count)
            total += samples
            frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] += samples
            own[frames[-1]] += samples
    print(f"{total} samples")
    print("-- on the stack (inclusive)")
    for frame, samples in inclusive.most_common(args.limit):
        print(f"{100 * samples / total:5.1f}%  {frame}")
    print("-- at the top (self)")
    for frame, samples in own.most_common(args.limit):
        print(f"{100 * samples / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
