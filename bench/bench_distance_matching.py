"""Benchmark of distance matching's step 2 (the k-NN vote) on CPU with a 919-class embedding bank.

Reports pixels per second. A typical ViT-S/16 validation image (256x341 after resizing) gives a
16x21 feature map, i.e. 64x84 = 5376 pixels after the 4x upsampling. ``vote_map`` (what the
command runs) takes dot products at feature resolution; ``knn_vote`` is the per-pixel form on the
upsampled features, for comparison.

    python bench/bench_distance_matching.py [--embeddings 18380] [--channels 384] [--images 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from imagenets.evaluation.distance_matching.bank import upsample
from imagenets.evaluation.distance_matching.vote import CHUNK_ELEMENTS, VoteBank, knn_vote, vote_map

FEATURE_SIZE = (16, 21)


def _timed(label: str, pixels: int, images: int, run) -> None:
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(f"{label:46s} {pixels / seconds:10,.0f} pixels/s  {images / seconds:6.2f} images/s  "
          f"({seconds:5.1f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--embeddings", type=int, default=2 * 9190,
                        help="bank size: ImageNet-S919 train-semi gives ~2 per image (class + background)")
    parser.add_argument("--classes", type=int, default=919, help="labels 0..K in the bank")
    parser.add_argument("--channels", type=int, default=384, help="feature channels C")
    parser.add_argument("--images", type=int, default=10, help="16x21 feature maps to label per run")
    parser.add_argument("--reference-images", type=int, default=3,
                        help="images for the slower per-pixel knn_vote")
    parser.add_argument("-k", type=int, default=10, help="voting neighbours")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--chunk-elements", type=int, nargs="+",
                        default=[1 << 21, CHUNK_ELEMENTS, 1 << 23],
                        help="similarity-matrix sizes per chunk to compare for vote_map")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, args.classes + 1, (args.embeddings,), generator=generator)
    bank = VoteBank(torch.randn(args.embeddings, args.channels, generator=generator), labels,
                    torch.device("cpu"))
    maps = [torch.randn(args.channels, *FEATURE_SIZE, generator=generator) for _ in range(args.images)]
    pixels = args.images * FEATURE_SIZE[0] * FEATURE_SIZE[1] * 16
    print(f"bank {args.embeddings} x {args.channels} ({args.classes} classes + background), "
          f"{args.images} images of {pixels // args.images} pixels, k={args.k}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    with torch.inference_mode():
        vote_map(maps[0], bank, args.k, 0.07)  # warm-up
        for chunk in args.chunk_elements:
            _timed(f"vote_map, chunks of {chunk * 4 / 2 ** 20:.0f} MiB", pixels, args.images,
                   lambda: [vote_map(f, bank, args.k, 0.07, chunk_elements=chunk) for f in maps])
        flat = [upsample(f).reshape(args.channels, -1).t().contiguous()
                for f in maps[:args.reference_images]]
        _timed(f"knn_vote per pixel, chunks of {CHUNK_ELEMENTS * 4 / 2 ** 20:.0f} MiB",
               pixels * len(flat) // args.images, len(flat),
               lambda: [knn_vote(f, bank, args.k, 0.07) for f in flat])


if __name__ == "__main__":
    main()
