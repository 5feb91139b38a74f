"""A pretrained file with any changed byte is refused (course_lib.pretrained, vae.load_pretrained).

Before issue 18 a flipped byte in a weight loaded silently (a bias off by 0.0072):
``torch.load`` checks no checksum, and a third of a small file's bytes (zip headers,
padding, pickle memo numbers) do not change what it loads at all. The embedded
SHA-256 covers every byte, so every flip must be refused, with a CheckpointError
naming the path, with or without ``sha256=``.
"""

from __future__ import annotations

import random

import pytest
import torch

from course_lib import pretrained, training, vae

torch.set_num_threads(1)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = vae.VAE(20, 3, (16,))
    path = tmp_path / "vae.pt"
    sha = vae.save_pretrained(model, path, test_log_px_nats=-12.5, seed=0)
    return path, sha, path.read_bytes()


def _refusal(path, sha256=None) -> str:
    with pytest.raises(training.CheckpointError) as info:
        vae.load_pretrained(path, sha256)
    assert str(path) in str(info.value), info.value
    return str(info.value)


def test_twenty_random_byte_flips_are_all_refused(saved):
    path, sha, good = saved
    rng = random.Random(18)
    positions = rng.sample(range(len(good)), 20)
    refused = 0
    for position in positions:
        blob = bytearray(good)
        blob[position] ^= rng.randrange(1, 256)  # a different byte
        path.write_bytes(bytes(blob))
        _refusal(path)  # the embedded digest alone
        _refusal(path, sha)  # and with the pinned SHA-256
        refused += 1
    assert refused == 20
    path.write_bytes(good)
    assert vae.load_pretrained(path)[1] == {"test_log_px_nats": -12.5, "seed": 0}


def test_every_single_byte_flip_is_refused(saved):
    """All positions of a small file (a few kB), each with every bit of the byte inverted."""
    path, _, good = saved
    messages, accepted = set(), []
    for position in range(len(good)):
        blob = bytearray(good)
        blob[position] ^= 0xFF
        path.write_bytes(bytes(blob))
        try:
            vae.load_pretrained(path)
        except training.CheckpointError as err:
            assert str(path) in str(err), err
            messages.add(str(err).split(str(path))[1][:30])
        else:
            accepted.append(position)
    assert accepted == []
    assert len(messages) >= 3  # corrupt / digest altered / other: the message says what is wrong


def test_every_truncation_is_refused(saved):
    path, _, good = saved
    for length in sorted({*range(0, len(good), 97), len(good) - 1, len(good) - 64, len(good) - 93}):
        path.write_bytes(good[:length])
        _refusal(path)


def test_the_digest_covers_the_bytes_torch_load_ignores(saved):
    """The premise: without the digest, many flips load unchanged or silently changed."""
    import io

    _, _, good = saved
    reference = torch.load(io.BytesIO(good), weights_only=True)
    silent = 0
    for position in range(0, len(good), 7):
        blob = bytearray(good)
        blob[position] ^= 0xFF
        try:
            torch.load(io.BytesIO(bytes(blob)), weights_only=True)
        except Exception:
            continue
        silent += 1
    assert silent > len(good) // 7 // 10  # torch.load alone accepts over a tenth of them
    assert reference["format"] == pretrained.FORMAT
